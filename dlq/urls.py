from django.urls import path

from console.views import not_yet

# Placeholder until issue #4 lands: the page says so and shows no made-up data.
urlpatterns = [
    path("dead-letters/", not_yet, {"section": "dlq", "issue": 4}, name="dlq"),
]
