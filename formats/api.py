"""JSON API: /api/v1/schemas, /api/v1/schemas/<type>, /api/v1/schemas/<type>/compatibility."""

from __future__ import annotations

import json

from django.http import JsonResponse

from console.access import VIEWER
from console.auth import ApiError, api, json_object
from formats import catalogue, queries
from formats.forms import CompatibilityForm


@api(methods=("GET",), role=VIEWER)
def schemas(request):
    """Every event type seen, with its versions, destinations, producers and failures."""
    return JsonResponse({"schemas": [queries.type_json(t) for t in queries.event_types()]})


@api(methods=("GET",), role=VIEWER)
def schema(request, event_type: str):
    """One event type: each version's schema and its compatibility with the previous one, and mismatched groups."""
    versions = catalogue.consecutive(event_type)
    if not versions:
        raise ApiError(404, f"no event type {event_type!r} has been seen")
    return JsonResponse(
        {
            "event_type": event_type,
            "versions": [
                {**v["version"].as_json(), "previous": v["previous"], "compatibility": v["checks"]} for v in versions
            ],
            "mismatched_groups": [queries.mismatch_json(m) for m in queries.mismatches(event_type)],
        }
    )


@api(methods=("POST",), role=VIEWER)
def compatibility(request, event_type: str):
    """POST {schema, kind: avro|json-schema|sample, mode: backward|forward|full}: would it break today's consumers?
    A check, not a change: nothing is stored."""
    latest = catalogue.current(event_type)
    if latest is None:
        raise ApiError(404, f"no event type {event_type!r} has been seen")
    body = json_object(request)
    if isinstance(body.get("schema"), dict | list):
        body = {**body, "schema": json.dumps(body["schema"])}  # the schema as an object, not only as its text
    form = CompatibilityForm(body)
    if not form.is_valid():
        raise ApiError(400, "invalid request", {k: [str(m) for m in v] for k, v in form.errors.items()})
    kind, parsed = form.cleaned_data["parsed"]
    breaking = catalogue.compatibility(latest, kind, parsed, form.cleaned_data["mode"])
    return JsonResponse(
        {"against": latest.version, "mode": form.cleaned_data["mode"], "compatible": not breaking, "breaking": breaking}
    )
