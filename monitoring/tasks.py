"""Thin Celery tasks: each calls one plain function that tests call directly."""

from celery import shared_task

from monitoring import webhooks  # noqa: F401 - registers monitoring.deliver_webhook with the worker


@shared_task(ignore_result=True, expires=60)
def sample():
    """One pass, unless another worker's pass is still running (passes at once would each store the same samples)."""
    from django.conf import settings

    from console import leases
    from monitoring.sampler import sample_all

    with leases.alone("monitoring-sampler", settings.SAMPLER_LEASE_SECONDS) as mine:
        return sample_all() if mine else None


@shared_task(ignore_result=True)
def downsample():
    from monitoring.sampler import downsample as run

    return run()
