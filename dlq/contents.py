"""What a user who may not read message contents (console.access.can_read_contents) sees of a dead letter.

Such a user sees that it failed and why: every header's name, but only the values of the failure and provenance
headers dlq/headers.py reads (exception, origin, attempts, type, correlation, replay provenance, x-death), whose values
are what on-call needs; any other header may carry the same personal or secret data as the body. Filters that would
let that user learn contents by trial (body search, a header filter on a hidden header) are refused, not emptied.
"""

from __future__ import annotations

from console.access import CONTENTS_NOTE, can_read_contents
from dlq import conventions as conventions_
from dlq import headers as h
from dlq.models import DeadLetter, DeadLetterSource

PROVENANCE = (h.EVENT_ID, h.REPLAY_OF, h.REPLAY_OPERATION, h.REPLAY_COUNT, "x-death")


def shown_header_names(conventions: list[dict]) -> set[str]:
    """Lower-cased names of the headers whose values stay visible: the defaults, plus the names sources configured for
    the same facts (`conventions["headers"]`)."""
    names = {name.lower() for fact in h.DEFAULT_NAMES.values() for name in fact}
    names.update(name.lower() for name in PROVENANCE)
    names.update(name.lower() for name in conventions_.HEADER_NAMES)
    for convention in conventions:
        for extra in ((convention or {}).get("headers") or {}).values():
            names.update(str(name).lower() for name in extra or [])
    return names


def masked_headers(dl: DeadLetter) -> dict:
    """The stored headers with every value but the failure and provenance ones replaced by None."""
    shown = shown_header_names([dl.source.conventions])
    return {name: value if name.lower() in shown else None for name, value in dl.headers.items()}


def headers_for(user, dl: DeadLetter) -> dict:
    return dl.headers if can_read_contents(user) else masked_headers(dl)


def refused_filters(f: dict, user) -> dict[str, list[str]]:
    """The cleaned inbox filters this user may not use, with why ({} when every one is allowed)."""
    if not f.keys() & {"q", "header"} or can_read_contents(user):
        return {}
    errors = {}
    if "q" in f:
        errors["q"] = [f"body search is not available: {CONTENTS_NOTE}"]
    if "header" in f:
        conventions = list(DeadLetterSource.objects.values_list("conventions", flat=True))
        if f["header"].partition("=")[0].strip().lower() not in shown_header_names(conventions):
            errors["header"] = [f"only failure headers can be filtered on: {CONTENTS_NOTE}"]
    return errors
