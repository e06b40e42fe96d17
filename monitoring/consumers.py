"""The "consumers" stream: each pass's changed targets, re-rendered as rows swapped in by id; targets first seen in
the pass are appended to the list (an open page has no row with their id to swap)."""

from django.template.loader import render_to_string

from console.consumers import StreamConsumer


class ConsumersConsumer(StreamConsumer):
    stream = "consumers"

    def render(self, payload):
        from monitoring import queries

        new = set(payload.get("new") or [])
        rows = queries.targets(ids=[*(payload.get("targets") or []), *new])
        if not rows:
            return ""
        queries.attach_sparklines(rows)
        changed = [t for t in rows if t.pk not in new]
        added = [t for t in rows if t.pk in new]
        ctx = self.template_context()
        parts = []
        if changed:
            parts.append(render_to_string("monitoring/_rows_oob.html", {"targets": changed, **ctx}))
        if added:
            # Its own message: appended rows need a <tbody> wrapper, which must not share a fragment with bare rows.
            parts.append(render_to_string("monitoring/_rows_new.html", {"targets": added, **ctx}))
        return parts
