"""System checks for settings that can only be judged once every app has registered what it brings."""

from django.conf import settings
from django.core.checks import Error


def approval_kinds(app_configs, **kwargs) -> list[Error]:
    """A misspelled kind in OPERATION_APPROVAL_KINDS would leave that operation without the second pair of eyes the
    setting promises, silently: refuse it like any other bad setting."""
    from console.operations import KINDS

    unknown = [kind for kind in settings.OPERATION_APPROVAL_KINDS if kind not in KINDS]
    if not unknown:
        return []
    return [
        Error(
            f"OPERATION_APPROVAL_KINDS names {', '.join(unknown)}, which no installed app registers",
            hint=f"known operation kinds: {', '.join(sorted(KINDS))}",
            id="switchyard.E001",
        )
    ]
