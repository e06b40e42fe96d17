import uuid

from django.template.loader import render_to_string

from console.consumers import StreamConsumer


class OutboxConsumer(StreamConsumer):
    stream = "outbox"

    def render(self, payload):
        from outbox import stats

        # The forms' idempotency keys: one render serves every socket of a role, but a key is only ever matched
        # against the same user's earlier actions (console.actions.find_repeat), so sharing it is harmless.
        context = {
            "backlog": stats.backlog(),
            "latency": stats.latency(),
            "oob": True,
            "key": str(uuid.uuid4()),
            **self.template_context(),
        }
        return render_to_string("outbox/_backlog.html", context)
