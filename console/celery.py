import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    "requeue-stale-operations": {"task": "console.requeue_stale_operations", "schedule": 30.0},
    **app.conf.beat_schedule,
}
