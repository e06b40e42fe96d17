"""Thin Celery tasks: each calls one plain function that tests call directly."""

from celery import shared_task

from monitoring import webhooks  # noqa: F401 - registers monitoring.deliver_webhook with the worker


@shared_task(ignore_result=True, expires=60)
def sample():
    from monitoring.sampler import sample_all

    return sample_all()


@shared_task(ignore_result=True)
def downsample():
    from monitoring.sampler import downsample as run

    return run()
