"""Loaded with `-p tests.env` before pytest-django reads the settings: the test-only environment."""

import os
import uuid

os.environ.setdefault("SWITCHYARD_TESTING", "1")
# Each run gets its own Celery queue and Channels prefix, so parallel runs on one Redis never see each other's work.
os.environ.setdefault("SWITCHYARD_NAMESPACE", f"sytest-{uuid.uuid4().hex[:8]}")
# Playwright's sync API keeps an event loop on the main thread; the ORM calls the tests make are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
