from django.template.loader import render_to_string

from console.consumers import StreamConsumer


class SagasConsumer(StreamConsumer):
    """Answers each changed saga with its list row and its detail header (whichever the page shows is swapped)."""

    stream = "sagas"

    def render(self, payload):
        from sagas.models import SagaInstance

        saga = SagaInstance.objects.filter(pk=payload.get("id")).first()
        if saga is None:
            return ""
        # The timeline's last page goes too: it replaces the page only where the viewer is on that last page.
        from sagas.queries import TIMELINE_PAGE_SIZE, timeline

        last = max(1, -(-saga.event_count // TIMELINE_PAGE_SIZE))
        events, _ = timeline(saga, last, failed_only=False)
        ctx = {"saga": saga, "events": events, "page": last, "oob": True, **self.template_context()}
        return render_to_string("sagas/_live.html", ctx)
