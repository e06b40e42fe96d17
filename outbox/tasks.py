from celery import shared_task


@shared_task
def purge() -> int:
    """Delete published and skipped rows past OUTBOX_RETENTION_HOURS (beat: "outbox-purge")."""
    from outbox.relay import purge as purge_published

    return purge_published()


@shared_task
def watch_relays() -> dict:
    """Beat ("outbox-watch-relays"): a killed relay cannot say it stopped, so this re-renders open backlog pages and
    the dashboard while relays are silent or none runs with events waiting, and forgets relays silent for a day."""
    from datetime import timedelta

    from django.utils import timezone

    from outbox import stats
    from outbox.live import announce_backlog
    from outbox.models import OutboxRelay

    OutboxRelay.objects.filter(seen_at__lt=timezone.now() - timedelta(days=1)).delete()
    backlog = stats.backlog()
    if backlog.stale or backlog.stalled:
        announce_backlog()
    return {"running": len(backlog.running), "stale": len(backlog.stale), "stalled": backlog.stalled}
