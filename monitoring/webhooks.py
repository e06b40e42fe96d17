"""Alert webhooks: one POST per attempt, retried by Celery with backoff. The sampler's pass only enqueues, so a dead
endpoint delays neither the pass nor the other rules' notifications."""

import json
import logging
import urllib.error
import urllib.request

from celery import shared_task

from console.backoff import backoff

log = logging.getLogger(__name__)
TIMEOUT = 5
ATTEMPTS = 3
BACKOFF_SECONDS = 2.0  # 2 s then 4 s (equal jitter) between the three attempts
BACKOFF_MAX_SECONDS = 60.0


def post(url: str, payload: dict) -> str | None:
    """One POST of the JSON payload. None when it is done with: delivered, or refused by a 4xx other than 429 (the
    receiver will not take it; retrying will not help). Otherwise the problem, worth another attempt."""
    data = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "switchyard-alerts"}
    try:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=TIMEOUT):
            return None
    except urllib.error.HTTPError as e:
        if e.code < 500 and e.code != 429:
            log.warning("alert webhook %s refused the notification: HTTP %s", url, e.code)
            return None
        return f"HTTP {e.code}"
    except OSError as e:
        return str(e)


@shared_task(bind=True, name="monitoring.deliver_webhook", ignore_result=True, max_retries=ATTEMPTS - 1)
def deliver(self, url: str, payload: dict) -> None:
    problem = post(url, payload)
    if problem is None:
        return
    attempt = self.request.retries + 1
    log.warning("alert webhook %s failed (attempt %s of %s): %s", url, attempt, ATTEMPTS, problem)
    if attempt < ATTEMPTS:
        raise self.retry(countdown=backoff(attempt, BACKOFF_SECONDS, BACKOFF_MAX_SECONDS, "equal"))
