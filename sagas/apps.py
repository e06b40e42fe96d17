from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class SagasConfig(AppConfig):
    name = "sagas"

    def ready(self):
        from console.dashboard import register_changes, register_chart, register_tile
        from console.metrics import register_family
        from console.trace import register_trace
        from sagas import operations  # noqa: F401 - registers the "saga-action" kind
        from sagas.dashboard import saga_changes, saga_charts, saga_families, saga_tiles, saga_trace

        register_tile(saga_tiles)
        register_chart(saga_charts)
        register_changes(saga_changes)
        register_trace(saga_trace, order=10)
        register_family(saga_families)
        # Workers must know the SDK sagas they run: import the modules that call sdk.define().
        for module in getattr(settings, "SAGA_DEFINITION_MODULES", []):
            import_module(module)
