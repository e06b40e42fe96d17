"""The slow drills share the suite's world (tests/conftest.py): the same users, live console and browser."""

from tests.conftest import chromium, live_console, page, world  # noqa: F401
