from celery import shared_task


@shared_task
def purge() -> int:
    from dlq.actions import purge as purge_dead_letters

    return purge_dead_letters()


@shared_task
def check_retention() -> int:
    from dlq.retention import check_all

    return len(check_all())
