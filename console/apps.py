from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Switchyard console"

    def ready(self):
        from django.core import checks

        from console import checks as console_checks

        checks.register(console_checks.approval_kinds)

        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from console import live

        # Open live sockets check their user again when the user logs out or their groups or account change.
        user = get_user_model()
        user_logged_out.connect(live.on_logged_out, dispatch_uid="switchyard-live-logout")
        m2m_changed.connect(live.on_groups_changed, sender=user.groups.through, dispatch_uid="switchyard-live-groups")
        post_save.connect(live.on_user_changed, sender=user, dispatch_uid="switchyard-live-user")
        post_delete.connect(live.on_user_changed, sender=user, dispatch_uid="switchyard-live-user-gone")
