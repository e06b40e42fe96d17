from django.urls import path

from console.views import not_yet

# Placeholder until issue #5 lands: the page says so and shows no made-up data.
urlpatterns = [
    path("outbox/", not_yet, {"section": "outbox", "issue": 5}, name="outbox"),
]
