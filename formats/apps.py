from django.apps import AppConfig


class FormatsConfig(AppConfig):
    name = "formats"
    default_auto_field = "django.db.models.BigAutoField"
