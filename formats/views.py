from __future__ import annotations

import json

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from console.access import VIEWER
from console.auth import require_role
from formats import catalogue, queries
from formats.forms import CompatibilityForm
from formats.models import SchemaVersion


@require_GET
@require_role(VIEWER)
def schemas(request):
    template = "formats/schemas.html" + ("#rows" if request.htmx else "")
    return render(request, template, {"types": queries.event_types(), "nav": "schemas"})


@require_http_methods(["GET", "POST"])
@require_role(VIEWER)
def schema(request, event_type: str):
    """One event type; a POST checks a pasted schema against its current version (a read: nothing is stored)."""
    versions = catalogue.consecutive(event_type)
    if not versions:
        raise Http404("no such event type")
    form = CompatibilityForm(request.POST if request.method == "POST" else None)
    result = None
    if form.is_valid():
        kind, parsed = form.cleaned_data["parsed"]
        latest = versions[-1]["version"]
        result = {"mode": form.cleaned_data["mode"], "against": latest.version}
        result["breaking"] = catalogue.compatibility(latest, kind, parsed, form.cleaned_data["mode"])
    ctx = {
        "event_type": event_type,
        "versions": [{**v, "schema_text": _pretty(v["version"])} for v in versions],
        "mismatches": queries.mismatches(event_type),
        "form": form,
        "result": result,
        "nav": "schemas",
    }
    return render(request, "formats/schema.html", ctx)


def _pretty(version: SchemaVersion) -> str:
    schema = version.schema
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            return schema
    return json.dumps(schema, indent=2, ensure_ascii=False) if schema is not None else ""
