"""WebSocket consumers: one per stream. Each re-checks the user's role on connect and answers every broadcast
payload with a server-rendered fragment that htmx's ws extension swaps in by id (hx-swap-oob)."""

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from django.template.loader import render_to_string

from console.access import VIEWER, has_role, roles
from console.live import group_name


class StreamConsumer(WebsocketConsumer):
    stream: str = ""
    role: str = VIEWER

    def connect(self):
        user = self.scope.get("user")
        if user is None or not has_role(user, self.role):
            # 4403: the close code browsers see for "forbidden"; an anonymous socket never joins a group.
            self.close(code=4403)
            return
        self.group = group_name(self.stream)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()

    def disconnect(self, code):
        if hasattr(self, "group"):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive(self, text_data=None, bytes_data=None):
        # The channel is server → browser only; anything the browser sends is ignored.
        return

    def live_event(self, event):
        html = self.render(event["payload"])
        if html:
            self.send(text_data=html)

    def render(self, payload: dict) -> str:
        """The fragment for one payload; each stream's consumer overrides this. Empty means send nothing."""
        return ""

    def template_context(self) -> dict:
        class _Request:
            user = self.scope["user"]

        return roles(_Request)


class OperationsConsumer(StreamConsumer):
    stream = "operations"

    def render(self, payload):
        from console.models import Operation

        op = Operation.objects.select_related("requested_by").filter(pk=payload["id"]).first()
        if op is None:
            return ""
        return render_to_string("console/_operation_live.html", {"op": op, **self.template_context()})


class DashboardConsumer(StreamConsumer):
    stream = "dashboard"

    def render(self, payload):
        from console.dashboard import tiles

        return render_to_string("console/_tiles.html", {"tiles": tiles(), "oob": True})
