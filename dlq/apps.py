from django.apps import AppConfig


class DlqConfig(AppConfig):
    name = "dlq"
    verbose_name = "Dead letters"

    def ready(self):
        from console.dashboard import register_changes, register_chart, register_tile
        from console.metrics import register_family
        from console.trace import register_trace
        from dlq import dashboard, operations  # noqa: F401 - registers the dlq.replay kind

        register_tile(dashboard.tiles)
        register_chart(dashboard.charts)
        register_changes(dashboard.changes)
        register_trace(dashboard.dead_letter_trace, order=30)
        register_family(dashboard.families)

        from dlq import queries
        from formats import catalogue

        catalogue.register_feed("dlq", queries.catalogue_rows)
