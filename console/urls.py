from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from console import api, oidc, sign_in, views

handler403 = "console.views.permission_denied"
handler404 = "console.views.not_found"
handler500 = "console.views.server_error"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    # Sign-in (console/sign_in.py, oidc.py): the login page with a button per provider, the refusal page, the
    # providers' authenticate and callback addresses, and a logout that ends the provider's session too.
    path("login/", sign_in.LoginView.as_view(), name="login"),
    path("login/refused/", sign_in.sign_in_refused, name="sign_in_refused"),
    path("logout/", oidc.logout, name="logout"),
    *oidc.urlpatterns_for(settings.SSO_OIDC_PROVIDERS),
    path("operations/", views.operations, name="operations"),
    path("operations/start", views.operation_start, name="operation_start"),
    path("operations/<uuid:operation_id>/", views.operation, name="operation"),
    path("operations/<uuid:operation_id>/control", views.operation_control, name="operation_control"),
    path(
        "operations/<uuid:operation_id>/approve",
        views.operation_decide,
        {"decision": "approve"},
        name="operation_approve",
    ),
    path(
        "operations/<uuid:operation_id>/reject", views.operation_decide, {"decision": "reject"}, name="operation_reject"
    ),
    path("audit/", views.audit, name="audit"),
    path("audit/export.jsonl", views.audit_export, name="audit_export"),
    path("brokers/", views.brokers_page, name="brokers"),
    path("brokers/<str:key>/test", views.broker_test, name="broker_test"),
    path("trace/", views.trace, name="trace"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/create", views.token_create, name="token_create"),
    path("tokens/<int:token_id>/revoke", views.token_revoke, name="token_revoke"),
    # Each capability brings its own pages and API under its own prefix.
    path("", include("sagas.urls")),
    path("", include("dlq.urls")),
    path("", include("outbox.urls")),
    path("", include("monitoring.urls")),
    path("", include("formats.urls")),
    # Django's admin: where admins manage users and their role groups (staff only).
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("processes/", views.processes_page, name="processes"),
    path("metrics", views.metrics_view, name="metrics"),
    path("api/v1/", api.index, name="api_index"),
    path("api/v1/me", api.me, name="api_me"),
    path("api/v1/operations", api.operations, name="api_operations"),
    path("api/v1/operations/<str:operation_id>", api.operation, name="api_operation"),
    path(
        "api/v1/operations/<str:operation_id>/approve",
        api.operation_decision,
        {"decision": "approve"},
        name="api_operation_approve",
    ),
    path(
        "api/v1/operations/<str:operation_id>/reject",
        api.operation_decision,
        {"decision": "reject"},
        name="api_operation_reject",
    ),
    path("api/v1/operations/<str:operation_id>/<str:action>", api.operation_control, name="api_operation_control"),
    path("api/v1/audit", api.audit, name="api_audit"),
    path("api/v1/brokers", api.brokers_list, name="api_brokers"),
    path("api/v1/brokers/<str:key>", api.broker_test, name="api_broker_test"),
    path("api/v1/trace", api.trace, name="api_trace"),
    path("api/v1/dashboard/timeline", api.dashboard_timeline, name="api_dashboard_timeline"),
    path("api/<path:rest>", views.raise_404),
]
