import uuid

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from console.access import OPERATOR, VIEWER, can_read_contents
from console.actions import Conflict
from console.auth import require_role
from console.forms import ReasonForm
from console.views import HtmxHttpRequest
from sagas import actions, queries
from sagas.forms import BulkPreviewForm, BulkStartForm, SagaActionForm, reason_message
from sagas.models import SagaInstance

# The Data panel shows this much of the indented context; the JSON API has all of it.
CONTEXT_SHOWN_CHARS = 20_000


def _get_saga(saga_id) -> SagaInstance:
    return get_object_or_404(SagaInstance, pk=saga_id)


@require_GET
@require_role(VIEWER)
def saga_list(request: HtmxHttpRequest):
    form = queries.SagaFilterForm(request.GET)
    rows, next_cursor, total, exact = queries.page(form) if form.is_valid() else ([], None, 0, True)
    query = request.GET.copy()
    query.pop("cursor", None)
    next_url = None
    if next_cursor:
        query["cursor"] = next_cursor
        next_url = "?" + query.urlencode()
    ctx = {
        "form": form,
        "sagas": rows,
        "next_url": next_url,
        "total": total,
        "exact": exact,
        "actions": actions.ACTIONS,
        "filter_items": [(k, v) for k, v in request.GET.items() if k != "cursor" and v],
        "nav": "sagas",
    }
    return render(request, "sagas/list.html" + ("#rows" if request.htmx else ""), ctx)


@require_GET
@require_role(VIEWER)
def saga_detail(request: HtmxHttpRequest, saga_id):
    saga = _get_saga(saga_id)
    try:
        page_number = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page_number = 1
    failed_only = request.GET.get("failed_only") == "1"
    # The Data panel is hidden from a user who may not read contents: nothing of it is rendered, not even its size.
    context_text, context_chars = saga.context_text(CONTEXT_SHOWN_CHARS) if can_read_contents(request.user) else ("", 0)
    ctx = {
        "saga": saga,
        "context_text": context_text,
        "context_chars": context_chars,
        "context_cut": context_chars > CONTEXT_SHOWN_CHARS,
        "context_max_bytes": settings.SAGA_CONTEXT_MAX_BYTES,
        **queries.timeline_context(saga, page_number, failed_only),
        "steps": actions.step_order(saga),
        "options": _action_options(saga),
        "key": str(uuid.uuid4()),
        "nav": "sagas",
    }
    return render(request, "sagas/detail.html" + ("#timeline" if request.htmx else ""), ctx)


def _action_options(saga: SagaInstance) -> dict:
    """Each action that is possible now, with its preview (compensate: the steps, in order)."""
    options = {}
    for action in actions.ACTIONS:
        try:
            options[action] = actions.preview(saga, action, {})
        except Conflict:
            continue
    return options


@require_GET
@require_role(OPERATOR)
def saga_preview(request, saga_id):
    saga = _get_saga(saga_id)
    step = request.GET.get("step") or None
    try:
        steps = actions.compensation_plan(saga, step)
    except Conflict as e:
        return render(request, "sagas/_preview.html", {"error": str(e)})
    return render(request, "sagas/_preview.html", {"steps": steps})


@require_POST
@require_role(OPERATOR)
def saga_action(request, saga_id, action):
    saga = _get_saga(saga_id)
    if action not in actions.ACTIONS:
        return HttpResponse(status=404)
    given = ReasonForm(request.POST)
    form = SagaActionForm(action, request.POST)
    error = None
    if not given.is_valid():
        error = reason_message(given)
    elif not form.is_valid():
        error = form.message()
    op = None
    if error is None:
        params, reason, key = form.params(), given.cleaned_data["reason"], given.cleaned_data["idempotency_key"]
        try:
            op, _ = actions.do_start_saga_action(request.user, saga, action, params, reason, key)
        except Conflict as e:
            error = str(e)
    return render(request, "sagas/_action_result.html", {"op": op, "error": error, "action": action})


@require_GET
@require_role(VIEWER)
def saga_failures(request):
    groups, more = queries.failure_groups()
    ctx = {"groups": groups, "more": more, "limit": queries.FAILURE_GROUPS_MAX, "nav": "sagas"}
    return render(request, "sagas/failures.html", ctx)


@require_POST
@require_role(OPERATOR)
def bulk_preview(request):
    """Freeze the target set — the ticked sagas, or all matching the filter — as count, sample, and the signed
    selection to confirm."""
    given = BulkPreviewForm(actions.ACTIONS, actions.BULK_MAX, request.POST)
    error, preview = None, None
    if not given.is_valid():
        error = given.message()
    elif given.ticked:
        ids = queries.existing_ids(given.cleaned_data["saga_ids"])
        if ids:
            preview = actions.freeze_selection(given.cleaned_data["action"], ids)
        else:
            error = "Tick at least one saga (that still exists)."
    else:
        form = queries.SagaFilterForm(request.POST)
        valid = form.is_valid()
        ids = queries.matching_ids(form, actions.BULK_MAX) if valid else None
        if not valid:
            # Name the field, as the list page does beside it.
            error = "; ".join(f"{name.replace('_', ' ')}: {' '.join(errs)}" for name, errs in form.errors.items())
        elif ids is None:
            error = f"More than {actions.BULK_MAX} sagas match: narrow the filter."
        elif not ids:
            error = "No saga matches this filter."
        else:
            preview = actions.freeze_selection(given.cleaned_data["action"], ids)
    ctx = {"error": error, "preview": preview, "key": str(uuid.uuid4())}
    return render(request, "sagas/_bulk_preview.html", ctx)


@require_POST
@require_role(OPERATOR)
def bulk_start(request):
    given = BulkStartForm(request.POST)
    action = given.data.get("action", "")
    form = SagaActionForm(action, {"note": request.POST.get("note", "")})
    op, error = None, None
    if action not in actions.ACTIONS or not given.is_valid():
        error = "A reason (and, to resolve, a note) is required."
    elif not form.is_valid():
        error = form.message()
    else:
        data = given.cleaned_data
        try:
            ids = actions.thaw_selection(action, data["selection"])
            params = form.params()
            op, _ = actions.do_start_bulk_saga_action(
                request.user, action, ids, params, data["reason"], data["idempotency_key"]
            )
        except Conflict as e:
            error = str(e)
    return render(request, "sagas/_action_result.html", {"op": op, "error": error, "action": action})
