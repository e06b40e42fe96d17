from django.template.loader import render_to_string

from console.consumers import StreamConsumer


class OutboxConsumer(StreamConsumer):
    stream = "outbox"

    def render(self, payload):
        from outbox import stats

        context = {"backlog": stats.backlog(), "latency": stats.latency(), "oob": True, **self.template_context()}
        return render_to_string("outbox/_backlog.html", context)
