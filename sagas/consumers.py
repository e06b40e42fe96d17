"""The "sagas" stream: list pages get rows (new sagas at the top when they match the page's filter), a saga's page
gets its header and the last page of its timeline (its other timeline views get a notice that they are behind).
What a socket shows comes from its query string: `/ws/sagas/?<the list's filters>` or `/ws/sagas/?saga=<id>`."""

from django.http import QueryDict
from django.template.loader import render_to_string

from console.consumers import StreamConsumer


class SagasConsumer(StreamConsumer):
    stream = "sagas"

    async def connect(self):
        query = QueryDict(self.scope.get("query_string", b"").decode(), mutable=False)
        self.saga_id = query.get("saga")
        self.form = None
        if self.saga_id is None:
            from sagas.queries import SagaFilterForm

            form = SagaFilterForm(query)
            # Only the first page of a list takes new rows: a later page is a frozen slice of older ones.
            if form.is_valid() and not form.cleaned_data.get("cursor"):
                self.form = form
        self.unseen = 0
        await super().connect()

    async def live_event(self, event):
        payload = event["payload"]
        if payload.get("type") != "sagas":
            return
        if self.saga_id is not None:
            if self.saga_id in payload["ids"]:
                # Shared per (broadcast, saga): every socket on this saga's page awaits one render.
                detail = {"id": f"{event.get('id')}:{self.saga_id}", "payload": {"type": "detail", "id": self.saga_id}}
                for part in await self._shared_render(detail) if event.get("id") else self.render(detail["payload"]):
                    await self.send(text_data=part)
            return
        for part in self._list_parts(payload, await self._shared_render(event)):
            await self.send(text_data=part)

    def _list_parts(self, payload: dict, rows: list) -> list[str]:
        parts = []
        new = set(payload["new"])
        for saga, html in rows:
            if saga.id in new:
                if self.form is not None and self.form.matches(saga):
                    # A table row cannot stand alone in a fragment; htmx inserts the wrapper's children.
                    row = html.replace(' hx-swap-oob="true"', "", 1)
                    parts.append(f'<tbody hx-swap-oob="afterbegin:#saga-rows">{row}</tbody>')
            elif self.form is not None and self.form.matches(saga):
                # It may have just started to match (failed, under status=failed): where the page does not show it,
                # htmx finds no row to swap and the page's script puts it on top instead (data-live-match).
                parts.append(html.replace(' hx-swap-oob="true"', ' hx-swap-oob="true" data-live-match', 1))
            else:
                parts.append(html)  # the row swaps itself in by id where the page shows it
        if payload["more_new"] and self.form is not None:
            self.unseen += payload["more_new"]
            parts.append(render_to_string("sagas/_new_notice.html", {"unseen": self.unseen}))
        return parts

    def render(self, payload):
        from sagas.models import SagaInstance

        if payload["type"] == "detail":
            saga = SagaInstance.objects.filter(pk=payload["id"]).first()
            return self._detail(saga) if saga is not None else []
        sagas = SagaInstance.objects.filter(pk__in=payload["ids"]).only(*LIST_FIELDS)
        # The role context too: operators' rows carry the tick box for bulk actions (the render is shared per role).
        ctx = self.template_context()
        return [(saga, render_to_string("sagas/_row.html", {"saga": saga, "oob": True, **ctx})) for saga in sagas]

    def _detail(self, saga) -> list[str]:
        from sagas.queries import TIMELINE_PAGE_SIZE, timeline_context

        # The timeline's last page: it replaces the timeline only where the viewer is on that last page.
        last = max(1, -(-saga.event_count // TIMELINE_PAGE_SIZE))
        ctx = {"saga": saga, "oob": True, **timeline_context(saga, last, False), **self.template_context()}
        return [
            render_to_string("sagas/_head.html", ctx),
            render_to_string("sagas/_timeline.html", ctx),
            # An earlier page, or the failed-only view, stays as it is (the reader may be in the middle of it) and
            # gets a notice instead; the last page has no notice element, so htmx drops this part there.
            render_to_string("sagas/_timeline_news.html", ctx),
        ]


LIST_FIELDS = (
    "id saga_type correlation_id status current_step last_error_type started_at updated_at state_since finished_at "
    "origin event_count"
).split()
