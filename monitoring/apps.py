from django.apps import AppConfig, apps


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Consumers, lag and depth"

    def ready(self):
        from console.dashboard import register_changes, register_chart, register_tile
        from console.metrics import register_family
        from monitoring import dashboard, metrics, operations  # noqa: F401 - registers the offset-reset kind

        register_tile(dashboard.consumer_tiles)
        register_chart(dashboard.consumer_charts)
        if apps.is_installed("outbox"):
            register_chart(dashboard.outbox_charts)
        register_changes(dashboard.consumer_changes)
        register_family(metrics.consumer_families)
