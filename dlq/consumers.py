from django.template.loader import render_to_string

from console.consumers import StreamConsumer
from dlq.queries import LIST_FIELDS


class DeadLettersConsumer(StreamConsumer):
    """New dead letters go to the top of the list; the groups page re-fetches its rows (fresh counts)."""

    stream = "dlq"

    def render(self, payload):
        from dlq.models import DeadLetter

        if payload.get("type") != "dead_letters":
            return ""
        rows = DeadLetter.objects.select_related("source").only(*LIST_FIELDS).filter(pk__in=payload["ids"][:200])
        return render_to_string("dlq/_live.html", {"rows": rows.order_by("id"), **self.template_context()})
