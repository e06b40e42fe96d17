"""The one way saga events get in: validation against the published schema, and `record_events()`.

The HTTP API, the Kafka ingest command, the SDK and operator actions all call `record_events()`, so every path is
idempotent (by event_id) and tolerant of out-of-order arrival in the same way.
"""

import json
import threading
import time
from collections import defaultdict, namedtuple
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import fastjsonschema
import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator, FormatChecker

from console.inputs import clip
from console.live import broadcast
from sagas.models import ACTIVE, FINISHED, Status

SCHEMA_PATH = Path(__file__).parent / "schema" / "saga-event.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
_validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())  # every error, by field
_fast = fastjsonschema.compile(SCHEMA)
MAX_BATCH = 5000
LIVE_SAGAS_PER_BATCH = 50  # beyond this a batch sends one "many changed" note instead of a payload per saga


def validate_event(item) -> tuple[dict | None, dict[str, list[str]]]:
    """(clean event, {}) or (None, {field: [messages]}). The clean event has parsed, tz-aware datetimes."""
    if not isinstance(item, dict):
        return None, {"event": ["must be a JSON object"]}
    try:
        _fast(item)  # compiled from the same schema: ~50x faster on the (common) valid event
    except fastjsonschema.JsonSchemaException:
        pass
    else:
        occurred = _parse_time(item["occurred_at"])
        text_error = _text_error(item)
        if occurred is not None and text_error is None:
            return _whole_numbers({**item, "occurred_at": occurred}), {}
    errors: dict[str, list[str]] = defaultdict(list)
    for error in _validator.iter_errors(item):
        # A missing field is reported under its own name; anything else under its path ("event" for the top level).
        if error.validator == "required":
            field = error.message.split("'")[1]
        else:
            field = ".".join(str(p) for p in error.path) or "event"
        errors[_shown(field)].append(_message(error))
    text_error = _text_error(item)
    if text_error is not None and _shown(text_error[0]) not in errors:
        errors[_shown(text_error[0])].append(text_error[1])
    occurred = None
    if "occurred_at" in item and "occurred_at" not in errors:
        occurred = _parse_time(item["occurred_at"])
        if occurred is None:
            errors["occurred_at"].append("must be an RFC 3339 date-time with a time zone")
    if errors:
        return None, dict(errors)
    clean = dict(item)
    clean["occurred_at"] = occurred
    return _whole_numbers(clean), {}


def _parse_time(value) -> datetime | None:
    """An RFC 3339 time with a zone, that is also a time in UTC (9999-12-31T23:59-14:00 is in year 10000, which
    PostgreSQL stores and Python cannot read back: the saga's page would fail for good)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return None
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return parsed


# Each error message names the offending value (`'xxx…' is too long`): a 300 KB value must not come back whole.
SHOWN_VALUE = 80


def _shown(text: str) -> str:
    return clip(text, SHOWN_VALUE)


def _message(error) -> str:
    whole = repr(error.instance)
    message = error.message
    if len(whole) > SHOWN_VALUE and whole in message:
        message = message.replace(whole, f"{whole[:SHOWN_VALUE]}… ({len(whole)} characters in all)", 1)
    return clip(message)


# JSON Schema's "integer" admits 2.0; the columns are int4 / int8 and PostgreSQL refuses "2.0" for them.
_WHOLE = ("seq", "attempt", "duration_ms")


def _whole_numbers(event: dict) -> dict:
    for name in _WHOLE:
        if isinstance(event.get(name), float):
            event[name] = int(event[name])
    broker = event.get("broker")
    if isinstance(broker, dict) and any(isinstance(broker.get(n), float) for n in ("partition", "offset")):
        event["broker"] = {k: int(v) if isinstance(v, float) else v for k, v in broker.items()}
    return event


CONTEXT_MAX_DEPTH = 64


def _text_error(event: dict) -> tuple[str, str] | None:
    """(field, message) for the first string, key included, that PostgreSQL cannot store — a NUL character, or a lone
    UTF-16 surrogate (JSON's "\\ud800" parses to one) — or for a context nested deeper than CONTEXT_MAX_DEPTH
    (every later step, pretty-printing the saga's data included, then stays well inside Python's recursion limit).
    Iterative: the walk itself must not recurse on a deep value."""
    stack: list[tuple[object, str, int]] = [(event, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > CONTEXT_MAX_DEPTH:
            return path.split(".")[0], f"nests deeper than {CONTEXT_MAX_DEPTH} levels"
        if isinstance(value, str):
            problem = _bad_string(value)
            if problem:
                return path or "event", problem
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _bad_string(key) if isinstance(key, str) else None
                if problem:
                    return path or "event", f"has a key that {problem.removeprefix('must ')}"
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}", depth + 1) for i, item in enumerate(value))
    return None


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "must not hold a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not hold a lone UTF-16 surrogate (\\ud800-\\udfff)"
    return None


def _cap_context(context: dict) -> dict:
    size = len(json.dumps(context, separators=(",", ":")))
    if size > settings.SAGA_CONTEXT_MAX_BYTES:
        return {"_truncated": True, "_bytes": size}
    return context


Row = namedtuple("Row", "saga_id step direction status saga_status occurred_at seq error_type", defaults=[""])

# Raw SQL on the hot path, one statement per step whatever the batch size. Each batch goes to Postgres as ONE json
# parameter unpacked by json_to_recordset: encoding a list of dicts is C code (json.dumps), where binding 23 typed
# arrays spent ~60 µs per event in psycopg's array dumpers. Columns match sagas/migrations.
_STATE = "status text, current_step text, started_at timestamptz, updated_at timestamptz, finished_at timestamptz, "
_STATE += "state_since timestamptz, event_count int4, tail_seq int8, tail_at timestamptz, pending_steps jsonb, "
_STATE += "last_error_type text"
_STATE_COLUMNS = [c.split()[0] for c in _STATE.split(", ")]
_INSERT_INSTANCES = f"""
INSERT INTO sagas_sagainstance (id, saga_type, correlation_id, origin, context, {", ".join(_STATE_COLUMNS)})
SELECT v.id, v.saga_type, v.correlation_id, v.origin, COALESCE(v.context, '{{}}'::jsonb), {
    ", ".join(f"v.{c}" for c in _STATE_COLUMNS)
}
FROM json_to_recordset(%s::json) AS v(id text, saga_type text, correlation_id text, origin text, context jsonb, {
    _STATE
})
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
_LOCK = f"SELECT id, {', '.join(_STATE_COLUMNS)} FROM sagas_sagainstance WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
State = namedtuple("State", ["id", *_STATE_COLUMNS])
_EVENT_COLUMNS = (
    "event_id saga_id seq step direction attempt status saga_status error_type error_message traceback "
    "idempotency_key transport destination partition offset message_id duration_ms actor_id note reason evidence_url "
    "occurred_at"
).split()
_EVENT_TYPES = (
    "text text int8 text text int4 text text text text text text text text int4 int8 text int4 int4 text text text "
    "timestamptz"
).split()
_QUOTED = [f'"{c}"' for c in _EVENT_COLUMNS]
_INSERT_EVENTS = (
    f"INSERT INTO sagas_sagastepevent ({', '.join(_QUOTED)}, recorded_at) "
    f"SELECT {', '.join('v.' + c for c in _QUOTED)}, now() FROM json_to_recordset(%s::json) "
    f"AS v({', '.join(f'{c} {t}' for c, t in zip(_QUOTED, _EVENT_TYPES, strict=True))}) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_HISTORY = """
SELECT saga_id, step, direction, status, saga_status, occurred_at, seq, error_type FROM sagas_sagastepevent
WHERE saga_id = ANY(%s) ORDER BY saga_id, seq ASC NULLS LAST, occurred_at, id
"""
_UPDATE = f"""
UPDATE sagas_sagainstance AS s SET {", ".join(f"{c} = v.{c}" for c in _STATE_COLUMNS)},
    context = COALESCE(v.context, s.context)
FROM json_to_recordset(%s::json) AS v(id text, context jsonb, {_STATE})
WHERE s.id = v.id
"""


def _event_values(event: dict, actor_id) -> dict:
    error = event.get("error") or {}
    broker = event.get("broker") or {}
    values = (
        event["event_id"],
        event["saga_id"],
        event.get("seq"),
        event["step"],
        event["direction"],
        event.get("attempt", 1),
        event["status"],
        event.get("saga_status", ""),
        error.get("type", ""),
        error.get("message", ""),
        error.get("traceback", ""),
        event.get("idempotency_key", ""),
        broker.get("transport", ""),
        broker.get("destination", ""),
        broker.get("partition"),
        broker.get("offset"),
        broker.get("message_id", ""),
        event.get("duration_ms"),
        actor_id,
        event.get("note", ""),
        event.get("reason", ""),
        event.get("evidence_url", ""),
        event["occurred_at"].isoformat(),
    )
    return dict(zip(_EVENT_COLUMNS, values, strict=True))


def _json(rows: list[dict]) -> str:
    return json.dumps(rows, separators=(",", ":"))


def record_events(events: list[dict], origin: str = "external", actor=None) -> list[str]:
    """Record validated events; return "created" or "duplicate" for each, in order.

    1. Lock the touched instances that exist, in id order, so two concurrent batches for one saga take turns instead
       of deriving from different states; the lock also reads each saga's derived state.
    2. Insert the events not repeated in the batch; ON CONFLICT DO NOTHING on event_id drops the ones already stored
       (also a concurrent repeat), and RETURNING says which were new.
    3. Sagas seen for the first time are inserted with the state derived from this batch's events (one write per
       instance); a concurrent batch that created one first makes it an existing saga, handled as in 4.
    4. An existing saga whose new events all sort after its last one (the usual case) has its stored state extended
       by them; one with a late event re-derives from its whole history in (seq, occurred_at) order, so a late event
       lands in its place and never moves the state backwards (ADR 0010, 0012).
    5. Live updates go out only after the commit.
    """
    if not events:
        return []
    # A server-binding psycopg cursor on Django's connection (same transaction).
    with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
        unique, seen = [], set()
        for e in events:  # the first of each event id, in batch order
            if e["event_id"] not in seen:
                seen.add(e["event_id"])
                unique.append(e)
        saga_ids = sorted({e["saga_id"] for e in unique})
        cursor.execute(_LOCK, [saga_ids])
        known = {row[0]: State(*row) for row in cursor.fetchall()}
        actor_id = actor.pk if actor else None
        cursor.execute(_INSERT_EVENTS, [_json([_event_values(e, actor_id) for e in unique])])
        created = {row[0] for row in cursor.fetchall()}
        results, claimed = [], set()
        for e in events:
            fresh = e["event_id"] in created and e["event_id"] not in claimed
            claimed.add(e["event_id"])
            results.append("created" if fresh else "duplicate")
        if not created:
            return results
        by_saga: dict[str, list[dict]] = defaultdict(list)
        for e in unique:
            if e["event_id"] in created:
                by_saga[e["saga_id"]].append(e)
        new = {s: evs for s, evs in by_saga.items() if s not in known}
        raced = _create_new(cursor, new, origin)
        if raced:
            cursor.execute(_LOCK, [sorted(raced)])
            known.update({row[0]: State(*row) for row in cursor.fetchall()})
        older = sorted(s for s in by_saga if s in known)
        if older:
            _update_existing(cursor, {s: by_saga[s] for s in older}, known)
        touched = sorted(by_saga)
        first_seen = sorted(set(new) - raced)
        transaction.on_commit(lambda: _sender.submit(_announce, touched, first_seen))
    return results


def _latest_context(events: list[dict]) -> dict | None:
    """The latest (by occurred_at) of these events that carried a context."""
    carrying = [e for e in events if "context" in e]
    return max(carrying, key=lambda e: e["occurred_at"]) if carrying else None


def _in_order(events: list[dict]) -> list[Row]:
    # The database's order, (seq NULLS LAST, occurred_at, id), with the batch position standing in for the id (ids
    # are assigned in batch order).
    indexed = list(enumerate(events))
    indexed.sort(key=lambda p: (p[1].get("seq") is None, p[1].get("seq") or 0, p[1]["occurred_at"], p[0]))
    return [
        Row(
            e["saga_id"],
            e["step"],
            e["direction"],
            e["status"],
            e.get("saga_status", ""),
            e["occurred_at"],
            e.get("seq"),
            (e.get("error") or {}).get("type", ""),
        )
        for _, e in indexed
    ]


def _state_json(saga_id: str, state: dict, context: dict | None) -> dict:
    row = {"id": saga_id, "context": _cap_context(context) if context is not None else None}
    for column in _STATE_COLUMNS:
        value = state[column]
        row[column] = value.isoformat() if isinstance(value, datetime) else value
    return row


def _create_new(cursor, new: dict[str, list[dict]], origin: str) -> set[str]:
    """Insert first-seen sagas with their derived state; return the ids another transaction created first."""
    if not new:
        return set()
    rows = []
    for saga_id, evs in new.items():
        ordered = _in_order(evs)
        latest = _latest_context(evs)
        row = _state_json(saga_id, derive(ordered), latest["context"] if latest else None)
        first = evs[0]
        correlation = next((e["correlation_id"] for e in evs if e.get("correlation_id")), "")
        row.update(saga_type=first["saga_type"], correlation_id=correlation, origin=origin)
        rows.append(row)
    cursor.execute(_INSERT_INSTANCES, [_json(rows)])
    created = {row[0] for row in cursor.fetchall()}
    return set(new) - created


def _extends(state: State, first: Row) -> bool:
    """True when `first` (and so every later event) sorts after the saga's last stored event."""
    if state.tail_at is None or state.pending_steps is None:
        return False
    if first.seq is None:
        return state.tail_seq is not None or first.occurred_at > state.tail_at
    return state.tail_seq is not None and (first.seq, first.occurred_at) > (state.tail_seq, state.tail_at)


def _update_existing(cursor, new: dict[str, list[dict]], known: dict[str, State]) -> None:
    ordered = {saga_id: _in_order(evs) for saga_id, evs in new.items()}
    late = sorted(s for s, rows in ordered.items() if not _extends(known[s], rows[0]))
    states = {s: derive(rows, known[s]._asdict()) for s, rows in ordered.items() if s not in late}
    if late:
        history = defaultdict(list)
        cursor.execute(_HISTORY, [late])
        for row in cursor.fetchall():
            history[row[0]].append(Row(*row))
        states.update({s: derive(history[s]) for s in late})
    updates = []
    for saga_id, state in states.items():
        stored = known[saga_id]
        # The context of the latest event that carried one; a late event older than what we had does not overwrite it.
        latest, context = _latest_context(new[saga_id]), None
        if latest is not None and (stored.event_count == 0 or latest["occurred_at"] >= stored.updated_at):
            context = latest["context"]
        updates.append(_state_json(saga_id, state, context))
    cursor.execute(_UPDATE, [_json(updates)])


def derive(events: list[Row], state: dict | None = None) -> dict:
    """The saga's state after its events, applied in order to `state` (the stored state they extend) or from scratch.

    Without an explicit `saga_status` an event means: execute started/succeeded/skipped → running; execute failed →
    failed; compensate started/succeeded/skipped → compensating, and compensated once every step that executed has
    been compensated; compensate failed → compensation_failed; resolved (an operator's note) → resolved_manually.
    A failed event also sets the error type the row keeps (`last_error_type`), whatever the status becomes.
    """
    if state is None:
        status, since, current, finished, done, count = Status.RUNNING, None, "", None, [], 0
        started = updated = None
        error_type = ""
    else:
        status, since, current, finished = state["status"], state["state_since"], state["current_step"], None
        pending = state["pending_steps"]  # Django's connection hands jsonb over as text
        done, count = list(json.loads(pending) if isinstance(pending, str) else pending), state["event_count"]
        started, updated = state["started_at"], state["updated_at"]
        error_type = state["last_error_type"] or ""
    for e in events:
        new = status
        if e.direction == "execute":
            if e.status in ("started", "succeeded", "skipped"):
                new = Status.RUNNING
            if e.status == "succeeded" and e.step not in done:
                done.append(e.step)
            elif e.status == "failed":
                new = Status.FAILED
        else:
            if e.status in ("succeeded", "skipped") and e.step in done:
                done.remove(e.step)
            if e.status in ("started", "succeeded", "skipped"):
                new = Status.COMPENSATED if e.status != "started" and not done else Status.COMPENSATING
            elif e.status == "failed":
                new = Status.COMPENSATION_FAILED
        if e.status == "failed":
            error_type = e.error_type
        if e.status == "resolved":
            new = Status.RESOLVED_MANUALLY
        if e.saga_status:
            new = e.saga_status
        current = e.step
        if new != status or since is None:
            since = e.occurred_at
        status = new
        finished = e.occurred_at if status in FINISHED else None
        started = e.occurred_at if started is None else min(started, e.occurred_at)
        updated = e.occurred_at if updated is None else max(updated, e.occurred_at)
    tail = events[-1]
    return {
        "status": str(status),
        "current_step": current,
        "started_at": started,
        "updated_at": updated,
        "finished_at": finished,
        "state_since": since,
        "event_count": count + len(events),
        "tail_seq": tail.seq,
        "tail_at": tail.occurred_at,
        "pending_steps": done,
        "last_error_type": error_type,
    }


# A broadcast is a Redis round trip plus async_to_sync's hop to an event loop (~10 ms): sent from one thread a process,
# in commit order, so that an API request or an ingest batch does not wait for it. The thread starts on first use (so
# a forked Celery child gets its own), and the interpreter joins it at exit, so a stopping worker still sends them.
_sender = ThreadPoolExecutor(1, thread_name_prefix="saga-live")


def _announce(saga_ids: list[str], first_seen: list[str]) -> None:
    """One "sagas" broadcast per batch (the consumer renders all its rows at once) and a throttled dashboard one."""
    new = set(first_seen)
    if len(saga_ids) <= LIVE_SAGAS_PER_BATCH:
        broadcast("sagas", {"type": "sagas", "ids": saga_ids, "new": [s for s in saga_ids if s in new], "more_new": 0})
    else:
        # Too many rows to push: open lists show "N new sagas — show" instead (the ids are not sent).
        broadcast("sagas", {"type": "sagas", "ids": [], "new": [], "more_new": len(new)})
    dashboard_throttle.call()


class Throttle:
    """Call `fn` at most once per `interval` seconds in this process: the first call runs now, calls within the
    interval collapse into one trailing run at its end (so the last change is always shown)."""

    def __init__(self, fn, interval: float):
        self.fn, self.interval = fn, interval
        self.lock = threading.Lock()
        self.last = float("-inf")
        self.pending: threading.Timer | None = None

    def call(self) -> None:
        with self.lock:
            wait = self.last + self.interval - time.monotonic()
            if wait <= 0:
                self.last = time.monotonic()
            elif self.pending is None:
                self.pending = threading.Timer(wait, self._trailing)
                self.pending.daemon = True
                self.pending.start()
                return
            else:
                return
        self.fn()

    def _trailing(self) -> None:
        with self.lock:
            self.pending = None
            self.last = time.monotonic()
        self.fn()


# Ingest commits many batches a second; the dashboard tiles re-render on every open console for each broadcast.
dashboard_throttle = Throttle(lambda: broadcast("dashboard", {"type": "dashboard", "tile": "sagas"}), 1.0)


def stuck_cutoff():
    return timezone.now() - timezone.timedelta(seconds=settings.SAGA_STUCK_AFTER_SECONDS)


__all__ = ["ACTIVE", "SCHEMA", "derive", "record_events", "stuck_cutoff", "validate_event"]
