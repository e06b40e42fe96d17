from django.urls import path

from formats import api, views

urlpatterns = [
    path("schemas/", views.schemas, name="schemas"),
    path("schemas/<path:event_type>/", views.schema, name="schema"),
    path("api/v1/schemas", api.schemas, name="api_schemas"),
    path("api/v1/schemas/<path:event_type>/compatibility", api.compatibility, name="api_schema_compatibility"),
    path("api/v1/schemas/<path:event_type>", api.schema, name="api_schema"),
]
