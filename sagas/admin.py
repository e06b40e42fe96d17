from django.contrib import admin

from sagas.models import CompensationRoute


@admin.register(CompensationRoute)
class CompensationRouteAdmin(admin.ModelAdmin):
    """Admins say where each external saga step's compensate (and retry) commands go."""

    list_display = ("saga_type", "step", "broker", "connection", "destination")
    list_filter = ("broker", "connection")
    search_fields = ("saga_type", "step", "destination")
