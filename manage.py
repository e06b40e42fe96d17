#!/usr/bin/env python
"""Django's command line, made to work beside `make run` and to say in one line what a deployment lacks.

`make run` writes the variables it gave its processes to `.run/env` (ports of the embedded brokers, DEBUG, ...) and
removes the file when it stops. When that file is present its variables are loaded here, without overriding any the
shell already set, so `python manage.py create_api_token admin` works in a plain shell while the demo runs.
SWITCHYARD_ENV_FILE names another file (empty: load none).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ENV_FILE = ROOT / ".run" / "env"


def load_env_file(path: Path, environ=os.environ) -> bool:
    """KEY=VALUE lines (as tools.run writes them); '#' lines are comments; a variable already set is kept.

    A file left by a launcher that was killed (SWITCHYARD_RUN_PID no longer runs) names ports nobody listens on:
    it is ignored. Returns whether the file was loaded.
    """
    try:
        text = path.read_text()
    except OSError:
        return False
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            pairs[key.strip()] = value
    if pairs.get("SWITCHYARD_RUN_PID", "").isdigit() and not _running(int(pairs["SWITCHYARD_RUN_PID"])):
        return False
    for key, value in pairs.items():
        environ.setdefault(key, value)
    return True


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process, but a live one
    return True


def main(argv: list[str]) -> int:
    chosen = os.environ.get("SWITCHYARD_ENV_FILE")
    loaded = load_env_file(Path(chosen) if chosen else ENV_FILE) if chosen != "" else False
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        # Read the settings first: Django would otherwise hide their error behind "Unknown command".
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - the import of the settings module happens here
        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        hint = "" if loaded else " (no .run/env from a running `make run`; else see the README's Settings)"
        print(f"manage.py: configuration incomplete: {exc}{hint}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        # Only the first line: libpq's message names the host and the reason; the rest is Django's call stack.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"manage.py: the database cannot be used: {first}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
