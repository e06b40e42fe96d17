import itertools
from datetime import UTC, datetime, timedelta

_ids = itertools.count(1)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ev(saga_id, step, direction="execute", status="succeeded", seq=None, saga_type="order", **extra) -> dict:
    """A saga event as an external producer sends it (JSON-ready)."""
    n = next(_ids)
    body = {
        "event_id": extra.pop("event_id", f"ev-{saga_id}-{n}"),
        "saga_id": saga_id,
        "saga_type": saga_type,
        "step": step,
        "direction": direction,
        "status": status,
        "occurred_at": extra.pop("occurred_at", (T0 + timedelta(seconds=seq or n)).isoformat()),
    }
    if seq is not None:
        body["seq"] = seq
    body.update(extra)
    return body


def post_events(client, token, body):
    return client.post(
        "/api/v1/saga-events", data=body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


def act(client, saga_id, action, key="k1", **body):
    body = {"reason": "on call", "idempotency_key": key, **body}
    return client.post(f"/api/v1/sagas/{saga_id}/actions/{action}", data=body, content_type="application/json")
