from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo traffic for `make run`: the one app allowed to use every other app (it sits at the top of the arrows)."""

    name = "demo"

    def ready(self):
        # The Celery worker must know the demo saga's steps to run them.
        from demo import sagas  # noqa: F401
