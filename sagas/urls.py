from django.urls import path

from sagas import api, views

urlpatterns = [
    path("sagas/", views.saga_list, name="sagas"),
    # No slash after the first segment: "sagas/<id>/…" is a saga's, and a saga may be called "failures" or "bulk".
    path("sagas/failures", views.saga_failures, name="saga_failures"),
    path("sagas/bulk-preview", views.bulk_preview, name="saga_bulk_preview"),
    path("sagas/bulk-start", views.bulk_start, name="saga_bulk_start"),
    path("sagas/<str:saga_id>/", views.saga_detail, name="saga"),
    path("sagas/<str:saga_id>/preview", views.saga_preview, name="saga_preview"),
    path("sagas/<str:saga_id>/actions/<str:action>", views.saga_action, name="saga_action"),
    path("api/v1/schema/saga-event.json", api.schema, name="api_saga_event_schema"),
    path("api/v1/saga-events", api.saga_events, name="api_saga_events"),
    path("api/v1/sagas", api.sagas, name="api_sagas"),
    path("api/v1/sagas/bulk/<str:action>", api.bulk_action, name="api_saga_bulk_action"),
    path("api/v1/sagas/<str:saga_id>", api.saga, name="api_saga"),
    path("api/v1/sagas/<str:saga_id>/actions/<str:action>", api.saga_action, name="api_saga_action"),
]
