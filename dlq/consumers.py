"""The "dlq" stream: new dead letters go to the top of an open inbox when its filter shows them; the groups page
re-fetches its rows (fresh counts) with its own filter. A socket's filter is its query string, the page's own:
`/ws/dlq/?<inbox filters>`."""

from urllib.parse import urlencode

from channels.db import database_sync_to_async
from django.http import QueryDict
from django.template.loader import render_to_string

from console.consumers import StreamConsumer
from dlq.queries import LIST_FIELDS


class DeadLettersConsumer(StreamConsumer):
    stream = "dlq"

    async def connect(self):
        from dlq import filters

        try:
            self.filter = filters.clean(QueryDict(self.scope.get("query_string", b"").decode()))
        except filters.FilterError:
            self.filter = None  # the page shows the filter's error and lists nothing, so it takes no rows either
        user = self.scope.get("user")
        if self.filter and user is not None:
            from dlq.contents import refused_filters

            # Which new rows a body search lets through would answer it: refused as on the page.
            if await database_sync_to_async(refused_filters)(self.filter, user):
                self.filter = None
        await super().connect()

    async def live_event(self, event):
        rows = await self._shared_render(event)
        if rows is None:
            return
        if self.filter is None:
            rows = []
        elif self.filter:
            # The filter can be anything the inbox takes (full text, headers, times): Postgres decides, for the new
            # rows only — one indexed query per socket per broadcast, never a re-read of the list.
            shown = await database_sync_to_async(self._matching)([pk for pk, _ in rows])
            rows = [(pk, html) for pk, html in rows if pk in shown]
        query = urlencode(self.filter or {})
        refresh = render_to_string("dlq/_groups_refresh.html", {"query": query})
        await self.send(text_data="".join(html for _, html in rows) + refresh)

    def _matching(self, ids: list[int]) -> set[int]:
        from dlq import filters
        from dlq.models import DeadLetter

        return set(filters.apply(DeadLetter.objects.filter(pk__in=ids), self.filter).values_list("pk", flat=True))

    def render(self, payload):
        """[(id, the row as an out-of-band insert at the top)], shared by every socket; None for other payloads."""
        from dlq.models import DeadLetter

        if payload.get("type") != "dead_letters":
            return None
        rows = DeadLetter.objects.select_related("source").only(*LIST_FIELDS).filter(pk__in=payload["ids"][:200])
        ctx = self.template_context()
        return [(dl.pk, render_to_string("dlq/_live.html", {"dl": dl, **ctx})) for dl in rows.order_by("id")]
