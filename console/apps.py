from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Switchyard console"

    def ready(self):
        from django.core import checks

        from console import checks as console_checks

        checks.register(console_checks.approval_kinds)
