from django.apps import AppConfig


class DlqConfig(AppConfig):
    name = "dlq"
    verbose_name = "Dead letters"

    def ready(self):
        from console.dashboard import register_tile
        from console.metrics import register_family
        from dlq import dashboard, operations  # noqa: F401 - registers the dlq.replay kind

        register_tile(dashboard.tiles)
        register_family(dashboard.families)
