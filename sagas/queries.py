"""The list's filters, keyset pagination and total (exact when small), shared by the page and GET /api/v1/sagas."""

from datetime import datetime
from urllib.parse import urlencode

from django import forms
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.utils import timezone
from django.utils.safestring import mark_safe

from console import counts
from sagas.models import ACTIVE, FAILING, SagaInstance, SagaStepEvent, Status

PAGE_SIZE = 50
TIMELINE_PAGE_SIZE = 100
FAILURE_GROUPS_MAX = 500
# `error_type=-` asks for sagas whose latest failure named no error type: a Failures group can have a blank error,
# and its link must select exactly that group (bulk actions act on what the link selects). No exception type is "-".
NO_ERROR_TYPE = "-"


class SagaFilterForm(forms.Form):
    saga_type = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(required=False, choices=[("", "any"), *Status.choices])
    correlation = forms.CharField(required=False, max_length=200, help_text="exact")
    correlation_prefix = forms.CharField(required=False, max_length=200)
    started_after = forms.DateTimeField(required=False)
    started_before = forms.DateTimeField(required=False)
    updated_after = forms.DateTimeField(required=False)
    updated_before = forms.DateTimeField(required=False)
    stuck_minutes = forms.IntegerField(required=False, min_value=1, max_value=525_600)
    step = forms.CharField(required=False, max_length=200, help_text="current step: the failed one, if failed")
    error_type = forms.CharField(required=False, max_length=200, help_text="of the latest failed event")
    cursor = forms.CharField(required=False, max_length=300)

    def clean_cursor(self):
        value = self.cleaned_data["cursor"]
        if not value:
            return None
        when, _, saga_id = value.partition("~")
        try:
            parsed = datetime.fromisoformat(when)
        except ValueError:
            raise forms.ValidationError("not a cursor this list gave out") from None
        return parsed, saga_id

    def filter(self, sagas: QuerySet) -> QuerySet:
        data = self.cleaned_data
        if data.get("saga_type"):
            sagas = sagas.filter(saga_type=data["saga_type"])
        if data.get("status"):
            sagas = sagas.filter(status=data["status"])
        if data.get("correlation"):
            sagas = sagas.filter(correlation_id=data["correlation"])
        if data.get("correlation_prefix"):
            sagas = sagas.filter(correlation_id__startswith=data["correlation_prefix"])
        for name, lookup in (
            ("started_after", "started_at__gte"),
            ("started_before", "started_at__lt"),
            ("updated_after", "updated_at__gte"),
            ("updated_before", "updated_at__lt"),
        ):
            if data.get(name):
                sagas = sagas.filter(**{lookup: data[name]})
        if data.get("step"):
            sagas = sagas.filter(current_step=data["step"])
        if data.get("error_type"):
            sagas = sagas.filter(last_error_type=_error_type(data["error_type"]))
        if data.get("stuck_minutes"):
            cutoff = timezone.now() - timezone.timedelta(minutes=data["stuck_minutes"])
            # Stuck means waiting on progress; a failed saga waits on an operator and has its own filter.
            sagas = sagas.filter(state_since__lt=cutoff)
            if not data.get("status"):
                sagas = sagas.filter(status__in=ACTIVE)
        return sagas

    def matches(self, saga: SagaInstance) -> bool:
        """Whether one saga passes the filter: `filter()` in Python, for rows pushed live to an open list."""
        data, now = self.cleaned_data, timezone.now()
        checks = [
            not data.get("saga_type") or saga.saga_type == data["saga_type"],
            not data.get("status") or saga.status == data["status"],
            not data.get("correlation") or saga.correlation_id == data["correlation"],
            not data.get("correlation_prefix") or saga.correlation_id.startswith(data["correlation_prefix"]),
            not data.get("started_after") or saga.started_at >= data["started_after"],
            not data.get("started_before") or saga.started_at < data["started_before"],
            not data.get("updated_after") or saga.updated_at >= data["updated_after"],
            not data.get("updated_before") or saga.updated_at < data["updated_before"],
            not data.get("step") or saga.current_step == data["step"],
            not data.get("error_type") or saga.last_error_type == _error_type(data["error_type"]),
        ]
        if data.get("stuck_minutes"):
            cutoff = now - timezone.timedelta(minutes=data["stuck_minutes"])
            checks.append(saga.state_since < cutoff and (bool(data.get("status")) or saga.status in ACTIVE))
        return all(checks)


def _error_type(value: str) -> str:
    return "" if value == NO_ERROR_TYPE else value


def page(form: SagaFilterForm, size: int = PAGE_SIZE) -> tuple[list[SagaInstance], str | None, int, bool]:
    """One page, newest update first, after the cursor; the next cursor; the total matching and whether it is exact
    (counted when small, else the planner's estimate, never below what was counted: console/counts.py)."""
    sagas = form.filter(SagaInstance.objects.all())
    total, exact = counts.counted(sagas, size)
    cursor = form.cleaned_data.get("cursor")
    if cursor:
        when, saga_id = cursor
        # `updated_at <= t` lets Postgres range-scan the index; the OR breaks ties on id.
        sagas = sagas.filter(Q(updated_at__lt=when) | Q(updated_at=when, id__lt=saga_id), updated_at__lte=when)
    fields = (
        "id",
        "saga_type",
        "correlation_id",
        "status",
        "current_step",
        "last_error_type",
        "started_at",
        "updated_at",
    )
    rows = list(
        sagas.order_by("-updated_at", "-id").only(*fields, "state_since", "finished_at", "origin", "event_count")[
            : size + 1
        ]
    )
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        next_cursor = f"{rows[-1].updated_at.isoformat()}~{rows[-1].id}"
    return rows, next_cursor, total, exact


def timeline(saga: SagaInstance, page_number: int, failed_only: bool) -> tuple[list[SagaStepEvent], bool]:
    """One page of the saga's events in history order; True when there is a later page.

    Offset paging over the (saga, seq, occurred_at, id) index: a 1,000-event saga is ten short index range scans.
    """
    events = SagaStepEvent.objects.filter(saga=saga).select_related("actor")
    if failed_only:
        events = events.filter(status=SagaStepEvent.StepStatus.FAILED)
    events = events.order_by(F("seq").asc(nulls_last=True), "occurred_at", "id")
    start = (page_number - 1) * TIMELINE_PAGE_SIZE
    rows = list(events[start : start + TIMELINE_PAGE_SIZE + 1])
    return rows[:TIMELINE_PAGE_SIZE], len(rows) > TIMELINE_PAGE_SIZE


def matching_ids(form: SagaFilterForm, cap: int) -> list[str] | None:
    """Ids of every saga matching the filter, newest update first; None when more than `cap` match."""
    matching = form.filter(SagaInstance.objects.all()).order_by("-updated_at", "-id").values_list("pk", flat=True)
    ids = list(matching[: cap + 1])
    return None if len(ids) > cap else ids


def existing_ids(saga_ids: list[str]) -> list[str]:
    """The given ids that name a saga, first occurrence order, repeats dropped."""
    found = set(SagaInstance.objects.filter(pk__in=saga_ids).values_list("pk", flat=True))
    return [i for i in dict.fromkeys(saga_ids) if i in found]


def timeline_context(saga: SagaInstance, page_number: int, failed_only: bool) -> dict:
    """What templates/sagas/_timeline.html needs, for the page and for the live update alike."""
    events, more = timeline(saga, page_number, failed_only)
    # Each event escapes its own fields (SagaStepEvent.html), so the joined markup is safe.
    return {
        "events": events,
        "timeline_html": mark_safe("".join(e.html() for e in events)),  # noqa: S308
        "page": page_number,
        "more": more,
        "last_page": not more,
        "failed_only": failed_only,
    }


def failure_groups(limit: int = FAILURE_GROUPS_MAX) -> tuple[list[dict], bool]:
    """Sagas waiting on an operator, grouped by (type, status, step, error type), biggest group first; True when
    there were more than `limit` groups. Status is part of the group because it decides which bulk action applies
    (retry-step to failed, retry-compensation to compensation_failed). One GROUP BY over the saga_failures index."""
    rows = list(
        SagaInstance.objects.filter(status__in=FAILING)
        .values("status", "current_step", "last_error_type", "saga_type")  # the index's order: no sort to group
        .annotate(count=Count("*"), oldest=Min("updated_at"), newest=Max("updated_at"))
        .order_by("-count", "saga_type", "status", "current_step", "last_error_type")[: limit + 1]
    )
    for row in rows:
        error = row["last_error_type"] or NO_ERROR_TYPE
        filters = {"saga_type": row["saga_type"], "status": row["status"], "step": row["current_step"]}
        row["query"] = urlencode({**filters, "error_type": error})
    return rows[:limit], len(rows) > limit
