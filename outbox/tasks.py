from celery import shared_task


@shared_task
def purge() -> int:
    """Delete published and skipped rows past OUTBOX_RETENTION_HOURS (beat: "outbox-purge")."""
    from outbox.relay import purge as purge_published

    return purge_published()
