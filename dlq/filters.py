"""The one filter language of the inbox: the list page, the API and "replay all matching this filter" share it."""

from __future__ import annotations

import re
from datetime import datetime

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from console import counts
from dlq.models import DeadLetter, DeadLetterSource

FILTER_KEYS = (
    "source",
    "connection",  # kind:name (or a kind alone: every connection of it)
    "origin",
    "group",
    "message_type",
    "exception_type",
    "exception_message",  # contains, any case
    "message_id",  # the broker's id, exactly (Kafka: partition:offset)
    "correlation_id",
    "status",
    "since",
    "until",
    "header",
    "q",
)
_CONNECTION = re.compile(r"[a-z]+(:[A-Za-z0-9][A-Za-z0-9_.-]{0,62})?")
# A trigram index finds a substring of three characters or more; a shorter one would read every row.
MESSAGE_SEARCH_MIN = 3


class FilterError(ValueError):
    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))
        self.fields = fields


def clean(params) -> dict:
    """The filter values present in `params` (a QueryDict or dict), validated; FilterError names the bad ones."""
    out, errors = {}, {}
    for name in FILTER_KEYS:
        value = params.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            value = str(value)
        if "\x00" in value:  # PostgreSQL text cannot hold it: a search for one was a DataError (a 500)
            errors[name] = ["must not hold a NUL character"]
        elif name == "source" and not value.isdigit():
            errors[name] = ["must be a source id"]
        elif name == "connection" and not _CONNECTION.fullmatch(value):
            errors[name] = ["must be kind:name, e.g. kafka:prod-eu, or a kind"]
        elif name in ("since", "until") and _when(value) is None:
            errors[name] = ["must be an ISO 8601 date-time"]
        elif name == "header" and "=" not in value:
            errors[name] = ["must be name=value"]
        elif name == "exception_message" and len(value.strip()) < MESSAGE_SEARCH_MIN:
            errors[name] = [f"give at least {MESSAGE_SEARCH_MIN} characters"]
        elif name == "status" and value not in DeadLetter.Status.values:
            errors[name] = [f"must be one of {', '.join(DeadLetter.Status.values)}"]
        else:
            out[name] = value[:500]
    if errors:
        raise FilterError(errors)
    return out


def _when(value: str) -> datetime | None:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        from django.utils import timezone

        parsed = timezone.make_aware(parsed)
    return parsed


def apply(qs: QuerySet, f: dict) -> QuerySet:
    if "source" in f:
        qs = qs.filter(source_id=int(f["source"]))
    if "connection" in f:
        kind, _, name = f["connection"].partition(":")
        qs = qs.filter(source__broker=kind, **({"source__connection": name} if name else {}))
    for name, field in (("origin", "origin"), ("group", "fingerprint"), ("message_type", "message_type")):
        if name in f:
            qs = qs.filter(**{field: f[name]})
    if "exception_type" in f:
        qs = qs.filter(exception_type=f["exception_type"])
    if "exception_message" in f:
        qs = qs.filter(exception_message__icontains=f["exception_message"].strip())  # dlq_exception_message_trgm
    if "correlation_id" in f:
        qs = qs.filter(correlation_id=f["correlation_id"])
    if "message_id" in f:
        qs = qs.filter(message_id=f["message_id"])
        if "source" not in f:
            # message_id is the second column of the (source, message_id) unique index: naming every source (a
            # handful; a list, not a subquery, whose join the planner may turn around) makes the index condition
            # `source_id = ANY(...) AND message_id = ...`, one descent per source instead of reading the whole index.
            qs = qs.filter(source__in=list(DeadLetterSource.objects.values_list("id", flat=True)))
    if "status" in f:
        qs = qs.filter(status=f["status"])
    if "since" in f:
        qs = qs.filter(last_failure_at__gte=_when(f["since"]))
    if "until" in f:
        qs = qs.filter(last_failure_at__lt=_when(f["until"]))
    if "header" in f:
        name, _, value = f["header"].partition("=")
        qs = qs.filter(headers__contains={name.strip(): value.strip()})
    if "q" in f:
        # The same expression as the dlq_body_search index, so Postgres can use it.
        qs = qs.annotate(search=SearchVector("body_text", config="simple")).filter(
            search=SearchQuery(f["q"], config="simple", search_type="websearch")
        )
    return qs


# Shared with the saga list (console/counts.py): exact when small, an estimate never below what was counted.
estimate = counts.planner_estimate
counted = counts.counted
