from django.urls import path

from console.views import not_yet

# Placeholder until issue #6 lands: the page says so and shows no made-up data.
urlpatterns = [
    path("consumers/", not_yet, {"section": "consumers", "issue": 6}, name="consumers"),
]
