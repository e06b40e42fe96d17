from celery import shared_task
from django.db import close_old_connections

from sagas import sdk


@shared_task(name="sagas.run_step", ignore_result=True)
def run_step(saga_id: str, direction: str, index: int, attempt: int) -> None:
    """One attempt of one SDK step; the next attempt or step is a new task (with its backoff as the countdown)."""
    close_old_connections()
    try:
        sdk.enqueue(saga_id, sdk.run_step(saga_id, direction, index, attempt))
    finally:
        close_old_connections()
