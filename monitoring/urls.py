from django.urls import path

from monitoring import api, views

urlpatterns = [
    path("consumers/", views.consumers, name="consumers"),
    path("consumers/alerts/", views.alerts, name="alerts"),
    path("consumers/alerts/create", views.alert_rule_create, name="alert_rule_create"),
    path("consumers/alerts/<int:rule_id>/edit", views.alert_rule_update, name="alert_rule_update"),
    path("consumers/alerts/<int:rule_id>/delete", views.alert_rule_delete, name="alert_rule_delete"),
    path("consumers/alerts/<int:rule_id>/silence", views.alert_rule_silence, name="alert_rule_silence"),
    path("consumers/alerts/<int:rule_id>/unsilence", views.alert_rule_unsilence, name="alert_rule_unsilence"),
    path("consumers/incidents/<int:incident_id>/acknowledge", views.incident_acknowledge, name="incident_acknowledge"),
    path("consumers/<str:broker>/<path:group>/reset", views.offset_reset, name="offset_reset"),
    path("consumers/<str:broker>/<path:name>/", views.consumer_detail, name="consumer_detail"),
    path("api/v1/consumers", api.consumers, name="api_consumers"),
    path("api/v1/consumers/<str:broker>/<path:group>/reset", api.offset_reset, name="api_offset_reset"),
    path("api/v1/consumers/<str:broker>/<path:name>/history", api.consumer_history, name="api_consumer_history"),
    path("api/v1/consumers/<str:broker>/<path:name>", api.consumer, name="api_consumer"),
    path("api/v1/alert-rules", api.alert_rules, name="api_alert_rules"),
    path("api/v1/alert-rules/<int:rule_id>", api.alert_rule, name="api_alert_rule"),
    path("api/v1/alert-rules/<int:rule_id>/silence", api.alert_rule_silence, name="api_alert_rule_silence"),
    path(
        "api/v1/incidents/<int:incident_id>/acknowledge",
        api.incident_acknowledge,
        name="api_incident_acknowledge",
    ),
]
