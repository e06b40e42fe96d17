from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"

    def ready(self):
        from console.dashboard import register_tile
        from console.metrics import register_family
        from console.trace import register_trace
        from outbox import stats

        register_tile(stats.tiles)
        register_trace(stats.outbox_trace, order=20)
        register_family(stats.metric_families)

        from formats import catalogue
        from outbox import payloads

        catalogue.register_feed("outbox", payloads.catalogue_rows)
