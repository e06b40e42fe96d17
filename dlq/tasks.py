from celery import shared_task


@shared_task
def purge() -> int:
    from dlq.actions import purge as purge_dead_letters

    return purge_dead_letters()
