from django.urls import path

from console.views import not_yet

# Placeholder until issue #3 lands: the page says so and shows no made-up data.
urlpatterns = [
    path("sagas/", not_yet, {"section": "sagas", "issue": 3}, name="sagas"),
]
