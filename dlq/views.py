"""Inbox pages: groups, list, detail, sources. Writes go through dlq.actions; replays become operations."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from console import bodies
from console import brokers as connections
from console.access import ADMIN, OPERATOR, VIEWER, can_read_contents
from console.actions import Conflict
from console.auth import require_role
from console.operations import ParameterError
from console.views import HtmxHttpRequest, back_to_referer
from dlq import actions, contents, filters, forms, queries, retention
from dlq.models import PURGEABLE, DeadLetter, DeadLetterSource
from dlq.operations import validate


def _filters_or_empty(request) -> tuple[dict, dict]:
    try:
        f = filters.clean(request.GET)
    except filters.FilterError as e:
        return {}, e.fields
    # Refused like a mistyped filter (error shown, nothing listed): an empty or full list would answer the search.
    refused = contents.refused_filters(f, request.user)
    return ({}, refused) if refused else (f, {})


@require_GET
@require_role(VIEWER)
def inbox(request: HtmxHttpRequest):
    f, errors = _filters_or_empty(request)
    before = request.GET.get("before")
    if errors:
        # Not every dead letter in place of a filter that was mistyped: "all matching" must not grow to everything.
        rows, next_before, total, exact = [], None, 0, True
    else:
        rows, next_before = queries.inbox(f, int(before) if before and before.isdigit() else None)
        total, exact = filters.counted(filters.apply(DeadLetter.objects.all(), f), queries.PAGE_SIZE)
    query = request.GET.copy()
    query.pop("before", None)
    if next_before:
        query["before"] = next_before
    ctx = {
        "rows": rows,
        "f": f,
        "typed": {name: request.GET.get(name, "") for name in filters.FILTER_KEYS},
        "errors": errors,
        "total": total,
        "exact": exact,
        "next_url": "?" + query.urlencode() if next_before else None,
        # The live socket's filter: new dead letters are inserted only where this filter shows them.
        "live_query": "" if errors else urlencode(f),
        "sources": DeadLetterSource.objects.all(),
        "connections": [c.key for c in connections.connections()],
        "statuses": DeadLetter.Status.values,
        "key": str(uuid.uuid4()),
        "nav": "dlq",
    }
    # The filter form swaps #dl-results; "Older…" and the live view's reload only add or replace rows.
    partial = ("#results" if request.htmx.target == "dl-results" else "#rows") if request.htmx else ""
    return render(request, "dlq/inbox.html" + partial, ctx)


@require_GET
@require_role(VIEWER)
def groups(request: HtmxHttpRequest):
    f, errors = _filters_or_empty(request)
    ctx = {
        "groups": queries.groups(f),
        "warnings": retention.warnings(),
        "f": f,
        "live_query": urlencode(f),
        "errors": errors,
        "key": str(uuid.uuid4()),
        "nav": "dlq",
    }
    return render(request, "dlq/groups.html" + ("#rows" if request.htmx else ""), ctx)


@require_GET
@require_role(VIEWER)
def detail(request, dead_letter_id: int):
    dl = get_object_or_404(DeadLetter.objects.select_related("source", "replay_of"), pk=dead_letter_id)
    ctx = {
        "dl": dl,
        "headers": sorted(contents.headers_for(request.user, dl).items()),
        "body": bodies.views(dl.body_bytes()) if can_read_contents(request.user) else None,
        "replays": dl.replays.select_related("operation", "actor").order_by("-id")[:100],
        "refailures": dl.refailures.order_by("-id")[:20],
        "saga": dl.saga(),
        "restorable": dl.status in PURGEABLE,
        "event": dl.outbox_event(),
        "key": str(uuid.uuid4()),
        "nav": "dlq",
    }
    return render(request, "dlq/detail.html", ctx)


@require_POST
@require_role(OPERATOR)
def replay_preview(request):
    """Freeze what Replay would send and show its count, a sample and what to know first (loop guard, sagas that are
    no longer running); confirming starts the operation on exactly that set, chosen destination and options."""
    form = forms.ReplayPreviewForm(request.POST)
    ctx = {"error": "" if form.is_valid() else form.message()}
    if not ctx["error"]:
        qs = form.cleaned_data["targets"]
        frozen = actions.preview(qs)
        if not frozen["ids"]:
            ctx["error"] = "No dead letters to replay: nothing is checked and nothing new matches."
        else:
            ctx.update(
                frozen=frozen,
                more=frozen["count"] - len(frozen["sample"]),
                warnings=actions.replay_warnings(qs),
                selection=actions.freeze_selection(frozen["ids"]),
                key=str(uuid.uuid4()),
                brokers=[c.key for c in connections.connections()],
                rate=form.data.get("rate", ""),  # as typed, into the confirm form
                reason=form.cleaned_data["reason"],
            )
    return render(request, "dlq/_replay_preview.html", ctx)


@require_POST
@require_role(OPERATOR)
def replay(request):
    """Replay a previewed selection (or, without one, the checked ids or a group / filter frozen now); then watch the
    operation's progress page."""
    form = forms.ReplayForm(request.POST)
    back = back_to_referer(request, "dlq")
    if not form.is_valid():
        messages.error(request, form.message())
        return redirect(back)
    data = form.cleaned_data
    try:
        if data["selection"]:
            ids = actions.thaw_selection(data["selection"])
        else:
            try:
                qs = forms.replay_targets(request.POST)
            except ValidationError as e:
                raise ParameterError(
                    {"filter": ["; ".join(f"{k}: {' '.join(v)}" for k, v in e.message_dict.items())]}
                ) from e
            ids = actions.preview(qs)["ids"]
        if not ids:
            raise ParameterError({"ids": ["no dead letters to replay"]})
        raw = {"ids": ids, **form.options()}
        op, _ = actions.do_replay_dead_letters(request.user, validate(raw), data["reason"], data["idempotency_key"])
    except (ParameterError, Conflict, ValueError) as e:
        messages.error(request, str(e))
        return redirect(back)
    return redirect("operation", operation_id=op.pk)


@require_POST
@require_role(OPERATOR)
def status_preview(request):
    """Freeze what "Archive group…" / "Discard group…" would change — the group's new and replayed letters (the ones
    already archived or discarded keep their status and purge date) — with its count and a sample; confirming changes
    exactly that set."""
    form = forms.StatusPreviewForm(request.POST)
    valid = form.is_valid()
    status = form.cleaned_data["status"] if valid else ""
    ctx = {"status": status, "verb": forms.STATUS_VERBS.get(status, "")}
    if not valid:
        ctx["error"] = "Choose a group, and archive or discard."
    else:
        group = form.cleaned_data["group"]
        frozen = actions.preview(filters.apply(DeadLetter.objects.exclude(status__in=PURGEABLE), {"group": group}))
        if not frozen["ids"]:
            ctx["error"] = f"Nothing to {ctx['verb']}: this group has no new or replayed dead letters."
        else:
            ctx.update(
                frozen=frozen,
                more=frozen["count"] - len(frozen["sample"]),
                selection=actions.freeze_selection(frozen["ids"], ctx["verb"]),
                key=str(uuid.uuid4()),
                retention_days=settings.DLQ_RETENTION_DAYS,
                reason=form.cleaned_data["reason"],
            )
    return render(request, "dlq/_status_preview.html", ctx)


@require_POST
@require_role(OPERATOR)
def set_status(request):
    """Archive, discard or restore (to new) the checked dead letters, or a selection frozen by the status preview."""
    back = back_to_referer(request, "dlq")
    # The inbox form also carries its filter's `status` as a hidden field before the button: the button's is the last.
    form = forms.StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose archive, discard or restore, and give a reason.")
        return redirect(back)
    status, verb = form.cleaned_data["status"], forms.STATUS_VERBS[form.cleaned_data["status"]]
    try:
        ids = (
            actions.thaw_selection(form.cleaned_data["selection"], verb)
            if form.cleaned_data["selection"]
            else form.cleaned_data["ids"]
        )
        if not ids:
            raise Conflict(f"Nothing to {verb}: check the dead letters first.")
        changed = actions.do_set_status(
            request.user, ids, status, form.cleaned_data["reason"], form.cleaned_data["idempotency_key"]
        )
    except Conflict as e:
        messages.error(request, str(e))
        return redirect(back)
    messages.success(request, f"{changed} dead letter(s) {'restored to new' if verb == 'restore' else status}.")
    return redirect(back)


@require_POST
@require_role(OPERATOR)
def edit_replay(request, dead_letter_id: int):
    dl = get_object_or_404(DeadLetter.objects.select_related("source"), pk=dead_letter_id)
    form = forms.EditReplayForm(dl, request.POST)
    if not form.is_valid():
        messages.error(request, f"Not replayed: {form.message()}")
        return redirect("dlq_detail", dead_letter_id=dl.pk)
    data = form.cleaned_data
    try:
        actions.do_edit_and_replay(
            request.user,
            dl,
            data["body"].encode(),
            data["headers"],
            data["reason"],
            data["idempotency_key"],
            schema_id=data["schema_id"],
        )
    except (ValueError, Conflict) as e:
        messages.error(request, f"Not replayed: {e}")
    else:
        messages.success(request, "Edited copy replayed.")
    return redirect("dlq_detail", dead_letter_id=dl.pk)


@require_GET
@require_role(VIEWER)
def sources(request):
    ctx = {
        "sources": DeadLetterSource.objects.all(),
        "warnings": retention.warnings(),
        "connections": [c.key for c in connections.connections()],
        "nav": "dlq",
    }
    return render(request, "dlq/sources.html", ctx)


@require_POST
@require_role(ADMIN)
def source_save(request):
    form = forms.SourceForm(request.POST)
    if not form.is_valid():
        # A mistake in the form, not a refusal of the admin: said on the page like the other forms' errors (a 403
        # here read as "you may not", issue 14's permission matrix).
        messages.error(request, "Choose a configured connection and a destination.")
        return redirect("dlq_sources")
    data = form.cleaned_data
    conn, destination = data["connection"], data["destination"]
    actions.do_save_source(request.user, conn, destination, data["origin"], data["enabled"], data["reason"])
    messages.success(request, f"Source {conn.key}/{destination} saved.")
    return redirect("dlq_sources")
