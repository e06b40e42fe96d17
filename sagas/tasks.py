from celery import shared_task
from django.db import close_old_connections

from sagas import steps


@shared_task(name="sagas.run_step", ignore_result=True)
def run_step(saga_id: str, direction: str, index: int, attempt: int) -> None:
    """One attempt of one SDK step; the next attempt or step is a new task (with its backoff as the countdown)."""
    close_old_connections()
    try:
        nxt = steps.run_attempt(saga_id, direction, index, attempt)
    finally:
        close_old_connections()
    if nxt is not None:
        run_step.apply_async((saga_id, nxt.direction, nxt.index, nxt.attempt), countdown=nxt.delay)
