from celery import shared_task
from django.db import close_old_connections

from console import operations


@shared_task(name="console.run_operation", ignore_result=True)
def run_operation(operation_id: str) -> None:
    # A long-lived worker must not reuse a connection the database has dropped.
    close_old_connections()
    try:
        operations.execute(operation_id)
    finally:
        close_old_connections()


@shared_task(name="console.requeue_stale_operations", ignore_result=True)
def requeue_stale_operations() -> None:
    """A worker killed mid-operation leaves it `running` with an old heartbeat: hand it to a live worker."""
    for operation_id in operations.stale():
        run_operation.delay(str(operation_id))


@shared_task(name="console.revalidate_sign_ins", ignore_result=True)
def revalidate_sign_ins() -> None:
    """Ask each signed-in identity's provider again (SSO_REFRESH_SECONDS): a role removed there ends here."""
    from console.revalidation import revalidate_once

    close_old_connections()
    try:
        revalidate_once()
    finally:
        close_old_connections()
