from django.urls import path

from outbox import api, views

urlpatterns = [
    path("outbox/", views.outbox, name="outbox"),
    path("outbox/retry", views.retry, name="outbox_retry"),
    path("outbox/retry-destination", views.retry_destination, name="outbox_retry_destination"),
    path("outbox/events/<int:event_pk>/", views.event, name="outbox_event"),
    path("outbox/<int:event_pk>/skip", views.skip, name="outbox_skip"),
    path("outbox/destination/<str:action>", views.destination_control, name="outbox_destination"),
    path("api/v1/outbox/stats", api.stats_view, name="api_outbox_stats"),
    path("api/v1/outbox/series", api.series_view, name="api_outbox_series"),
    path("api/v1/outbox/events", api.events, name="api_outbox_events"),
    path("api/v1/outbox/events/retry", api.retry, name="api_outbox_retry"),
    path("api/v1/outbox/events/<int:event_pk>", api.event, name="api_outbox_event"),
    path("api/v1/outbox/events/<int:event_pk>/skip", api.skip, name="api_outbox_skip"),
    path("api/v1/outbox/destinations/<str:action>", api.destination_control, name="api_outbox_destination"),
    path("api/v1/outbox/payloads/<str:payload_id>", api.payload, name="api_outbox_payload"),
]
