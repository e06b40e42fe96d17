"""The "consumers" stream: each pass's changed targets, re-rendered as rows swapped in by id; targets first seen in
the pass are appended to the list (an open page has no row with their id to swap) when the page's filter shows them.
What a socket shows comes from its query string: `/ws/consumers/?status=&broker=&q=`, the list's own filter."""

from django.http import QueryDict
from django.template.loader import render_to_string

from console.consumers import StreamConsumer


class ConsumersConsumer(StreamConsumer):
    stream = "consumers"

    async def connect(self):
        query = QueryDict(self.scope.get("query_string", b"").decode())
        self.filter = {"status": query.get("status", ""), "broker": query.get("broker", ""), "q": query.get("q", "")}
        await super().connect()

    async def live_event(self, event):
        # One render per broadcast is shared by every socket; only which new rows to append differs per socket.
        rendered = await self._shared_render(event)
        if not rendered:
            return
        changed, added = rendered
        if changed:
            await self.send(text_data=changed)
        from monitoring.queries import matches

        shown = [html for target, html in added if matches(target, **self.filter)]
        if shown:
            # Its own message: appended rows need a <tbody> wrapper, which must not share a fragment with bare rows.
            await self.send(text_data=render_to_string("monitoring/_rows_new.html", {"rows": shown}))

    def render(self, payload):
        from monitoring import queries

        new = set(payload.get("new") or [])
        rows = queries.targets(ids=[*(payload.get("targets") or []), *new])
        if not rows:
            return None
        queries.attach_sparklines(rows)
        ctx = self.template_context()
        changed = [t for t in rows if t.pk not in new]
        html = render_to_string("monitoring/_rows_oob.html", {"targets": changed, **ctx}) if changed else ""
        added = [(t, render_to_string("monitoring/_row.html", {"t": t, **ctx})) for t in rows if t.pk in new]
        return html, added
