"""Hostile input, generated: every URL pattern (pages, forms and the JSON API) with hostile query strings, form bodies
and JSON bodies, as the roles that reach the code behind the permission check.

A case is one request. What it is answered with is sorted into:
- `http_500`: a 5xx, or no answer at all (an exception out of the stack);
- `unclear`: a 4xx whose body gives no short message (empty, or echoing a long input back whole);
- `clear`: a 4xx with a short message;
- `accepted`: a 2xx or 3xx (harmless input, e.g. an unknown field ignored or a search that matches nothing).

Cases are drawn from the full product (route × method × variant) with a seeded random sample, so a failure names
its seed and index and replays exactly (DRILLS_SEED)."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parent.parent.parent
APPS = ("console", "sagas", "dlq", "outbox", "monitoring")

# --- the corpus ---------------------------------------------------------------------------------------------------

LONG = "x" * 100_000
HOSTILE_STRINGS = [
    "",
    " ",
    "<script>window.pwned=1</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    '"',
    "'",
    "javascript:alert(1)",
    "a\x00b",
    "\x00",
    "\r\nSet-Cookie: pwned=1",
    "line\nX-Injected: 1",
    "../../../../etc/passwd",
    "%s%s%s%n",
    "{{7*7}}{% debug %}",
    "${jndi:ldap://x/a}",
    "' OR 1=1 --",
    "\u202egnp.exe",
    "\x1b[31mred",
    "😀" * 500,
    "-1",
    "0",
    "9" * 40,
    "1e309",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "2026-13-45T99:99:99Z",
    "kafka:nope",
    LONG,
]
HOSTILE_JSON = [
    *HOSTILE_STRINGS,
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**63,
    10**40,
    -(10**40),
    1.5,
    1e308,
    [],
    {},
    [1, "a", None],
    {"a": {"b": {"c": [1, {"d": "<script>"}]}}},
    ["x"] * 10_000,
    {f"k{i}": i for i in range(2_000)},
]
# Bodies that are not JSON, or JSON Python reads but PostgreSQL and the schema should not take.
RAW_BODIES = [
    b"",
    b"\xff\xfe\xfd",
    b'{"reason": "\xff\xfe"}',
    b'{"reason": "\\ud800"}',
    b'{"reason": "a\\u0000b"}',
    b"\x00\x00\x00",
    b"[" * 20_000,
    b'{"a":' * 5_000,
    b'{"reason": ',
    b"NaN",
    b'{"threshold": NaN, "minutes": Infinity}',
    b'{"seq": 1e999}',
    b"<script>alert(1)</script>",
    bytes(range(256)) * 40,
    b'{"reason": "' + b"x" * 10_000_000 + b'"}',  # 10 MB
]
HOSTILE_PATH = [
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "%22%3E%3Cimg%20src%3Dx%3E",
    "x" * 5_000,
    "%00",
    "%E2%80%AE",
    "..%2F..%2Fetc",
    "kafka:%0d%0aX:1",
    "%F0%9F%98%80",
    "99999999999999999999999999",
]


def field_names() -> list[str]:
    """Every request field name the apps read: `.get("x")`, `getlist("x")`, `["x"]` and form fields, found in their
    source so a new field joins the drill without anyone listing it."""
    names: set[str] = set()
    pattern = re.compile(
        r"""(?:\.get|getlist|\.pop)\(\s*["']([a-z_][a-z0-9_]{1,40})["']|\[["']([a-z_][a-z0-9_]{1,40})["']\]"""
    )
    form_field = re.compile(r"^\s+([a-z_][a-z0-9_]*)\s*=\s*forms\.", re.M)
    for app in APPS:
        for path in (ROOT / app).glob("*.py"):
            text = path.read_text()
            for match in pattern.finditer(text):
                names.add(match.group(1) or match.group(2))
            names.update(form_field.findall(text))
            if path.name in ("filters.py", "forms.py", "queries.py"):  # filter keys listed in tuples
                names.update(re.findall(r'^\s+"([a-z_][a-z0-9_]{0,40})",', text, re.M))
    return sorted(names)


# --- the routes ---------------------------------------------------------------------------------------------------

CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _methods(callback) -> set[str] | None:
    """The methods a page view allows (require_GET / require_POST keep them in a closure), or None: any."""
    view = callback
    while view is not None:
        code = getattr(view, "__code__", None)
        if code is not None and "request_method_list" in code.co_freevars:
            cell = view.__closure__[code.co_freevars.index("request_method_list")]
            return {m.upper() for m in cell.cell_contents}
        view = getattr(view, "__wrapped__", None)
    return None


@dataclass
class Route:
    pattern: str
    callback: object
    default_args: dict = field(default_factory=dict)

    @property
    def api(self) -> bool:
        return hasattr(self.callback, "api_methods")

    @property
    def methods(self) -> set[str]:
        if self.api:
            return set(self.callback.api_methods)
        return _methods(self.callback) or {"GET", "POST"}

    @property
    def role(self) -> str | None:
        return getattr(self.callback, "api_role", None) or getattr(self.callback, "required_role", None)

    @property
    def params(self) -> list[tuple[str, str]]:
        return [(conv or "str", name) for conv, name in CONVERTER.findall(self.pattern)]

    def url(self, values: dict[str, str]) -> str:
        return "/" + CONVERTER.sub(lambda m: values[m.group(2)], self.pattern)


def routes(include_admin: bool = False) -> list[Route]:
    found: list[Route] = []

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern) == "admin/" and not include_admin:
                    continue
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                found.append(Route(prefix + str(p.pattern), p.callback, dict(p.default_args)))

    walk(get_resolver().url_patterns)
    return found


# --- the world the cases act on -----------------------------------------------------------------------------------


def seed(admin) -> dict[str, str]:
    """One of each thing a URL can name, so a case with a sane id reaches the code past the lookup."""
    from django.db import transaction
    from django.utils import timezone

    from console.models import ApiToken, Operation
    from dlq.models import DeadLetter, DeadLetterSource
    from monitoring.models import AlertRule, Incident
    from outbox.models import OutboxEvent
    from outbox.publishing import publish
    from sagas.ingest import validate_event
    from sagas.recording import record_events
    from tests.sagas.helpers import ev

    # A failed saga: compensate, retry and resolve all apply to it.
    steps = [ev("drill-1", "reserve", seq=1), ev("drill-1", "charge", status="failed", seq=2)]
    record_events([validate_event(e)[0] for e in steps])
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"drill-{uuid.uuid4().hex[:6]}.DLQ")
    now = timezone.now()
    dl = DeadLetter.objects.create(
        source=source,
        origin="drill",
        message_id="0:0",
        body=b'{"a": 1}',
        body_text='{"a": 1}',
        first_failure_at=now,
        last_failure_at=now,
        fingerprint="fp-drill",
    )
    with transaction.atomic():
        event = publish("kafka://drill.events", "k1", "drill.updated", {"a": 1})
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxEvent.Status.FAILED)  # retry and skip apply
    rule = AlertRule.objects.create(name="drill", kind="consumer_status", minutes=5)
    incident = Incident.objects.create(rule=rule, subject="kafka:drill", summary="drill")
    operation = Operation.objects.create(kind="noop", requested_by=admin, idempotency_key=f"drill-{uuid.uuid4()}")
    value = ApiToken.generate()
    token = ApiToken.objects.create(user=admin, name="drill", prefix=value[:10], token_hash=ApiToken.hash(value))
    return {
        "saga_id": "drill-1",
        "dead_letter_id": str(dl.pk),
        "event_pk": str(event.pk),
        "rule_id": str(rule.pk),
        "incident_id": str(incident.pk),
        "operation_id": str(operation.pk),
        "token_id": str(token.pk),
        "payload_id": str(uuid.uuid4()),
        "action": "compensate",
        "broker": "kafka",
        "group": "drill-group",
        "name": "drill-group",
        "key": "kafka:default",
        "rest": "nothing",
    }


# --- the cases ----------------------------------------------------------------------------------------------------


@dataclass
class Case:
    route: Route
    method: str
    url: str
    body: bytes | dict | None = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)
    label: str = ""

    def inputs(self) -> list[str]:
        """The long strings this case sends, which an answer must not echo back whole."""
        found = [s for s in HOSTILE_STRINGS if len(s) > 1000 and s in self.url]
        if isinstance(self.body, dict) and any(v == LONG or v == [LONG] for v in self.body.values()):
            found.append(LONG)
        return found


def _path_values(route: Route, sane: dict[str, str], rng: random.Random) -> tuple[str, str]:
    """The URL with each parameter sane or (one in three) hostile."""
    values, labels = {}, []
    for conv, name in route.params:
        if conv in ("str", "path") and rng.random() < 0.34:
            values[name] = rng.choice(HOSTILE_PATH)
            labels.append(f"{name}=hostile")
        elif conv == "int" and rng.random() < 0.2:
            values[name] = rng.choice(["0", "99999999999999999999999999", "2147483648"])
            labels.append(f"{name}=big")
        else:
            values[name] = sane.get(name, "x")
    return route.url(values), ",".join(labels)


def _json_value(rng: random.Random):
    return rng.choice(HOSTILE_JSON)


def _form_value(rng: random.Random):
    value = rng.choice(HOSTILE_STRINGS)
    return [value, value] if rng.random() < 0.1 else value


def cases(sane: dict[str, str], count: int, seed_: int) -> list[Case]:
    """`count` cases spread evenly over the routes, each route's variants drawn with the seeded generator."""
    rng = random.Random(seed_)
    names = field_names()
    all_routes = [r for r in routes() if r.pattern not in ("logout/",)]  # logging out ends the drill's own session
    out: list[Case] = []
    per_route = max(1, count // len(all_routes))
    for route in all_routes:
        for i in range(per_route):
            url, label = _path_values(route, sane, rng)
            methods = sorted(route.methods | {"PUT", "DELETE"}) if i % 10 == 9 else sorted(route.methods)
            method = rng.choice(methods)
            chosen = rng.sample(names, k=rng.randint(0, 6))
            if method in ("GET", "HEAD"):
                # Query strings: hostile values for fields the apps read, some invalid percent-encoding.
                query = "&".join(f"{n}={_quote(_form_value(rng))}" for n in chosen)
                if rng.random() < 0.1:
                    query += "&q=%ff%fe&before=%zz"
                out.append(Case(route, method, url + ("?" + query if query else ""), label=f"query {label}"))
                continue
            kind = rng.random()
            if route.api or kind < 0.3:
                if rng.random() < 0.25:
                    body = rng.choice(RAW_BODIES)
                    out.append(Case(route, method, url, body, "application/json", label=f"raw {label}"))
                    continue
                data = {n: _json_value(rng) for n in chosen}
                if rng.random() < 0.3:
                    data["reason"], data["idempotency_key"] = "drill", f"drill-{rng.random()}"
                body = json.dumps(data).encode() if rng.random() < 0.9 else json.dumps([data]).encode()
                out.append(Case(route, method, url, body, "application/json", label=f"json {label}"))
            else:
                data = {n: _form_value(rng) for n in chosen}
                if rng.random() < 0.3:
                    data["reason"], data["idempotency_key"] = "drill", f"drill-{rng.random()}"
                headers = {"HX-Request": "true"} if rng.random() < 0.3 else {}
                if rng.random() < 0.05:
                    out.append(Case(route, method, url, rng.choice(RAW_BODIES), "multipart/form-data; boundary=x"))
                    continue
                out.append(Case(route, method, url, data, None, headers, label=f"form {label}"))
    return out


def _quote(value) -> str:
    from urllib.parse import quote

    if isinstance(value, list):
        value = value[0]
    return quote(value[:20_000], safe="")


# --- running and judging ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> int:
        return sum(self.counts.values())

    def add(self, verdict: str, case: Case, detail: str = "") -> None:
        self.counts[verdict] += 1
        if verdict in ("http_500", "unclear") and len(self.failures) < 50:
            self.failures.append(f"{verdict}: {case.method} {case.url[:150]} [{case.label}] {detail[:300]}")


def _clear(response, case: Case) -> tuple[bool, str]:
    content = response.content
    if len(content) > 200_000:
        return False, f"{len(content)} bytes answered"
    for echoed in case.inputs():
        if echoed.encode() in content:
            return False, "the whole input echoed back"
    if response.get("Content-Type", "").startswith("application/json"):
        try:
            error = json.loads(content).get("error")
        except (ValueError, AttributeError):
            return False, "JSON answer without an error"
        return (isinstance(error, str) and 0 < len(error) <= 1000), f"error={error!r:.200}"
    text = re.sub(rb"<[^>]+>", b" ", content).strip()
    return bool(text), content[:200].decode(errors="replace")


def judge(response, case: Case) -> tuple[str, str]:
    status = response.status_code
    if status >= 500:
        return "http_500", content_head(response)
    if status >= 400:
        ok, detail = _clear(response, case)
        return ("clear" if ok else "unclear"), f"{status} {detail}"
    return "accepted", ""


def content_head(response) -> str:
    return f"{response.status_code} {response.content[:300]!r}"


def send(client: Client, case: Case, token: str | None):
    headers = dict(case.headers)
    if token and case.route.api:
        headers["Authorization"] = f"Bearer {token}"
    call = getattr(client, case.method.lower())
    if case.body is None:
        return call(case.url, headers=headers)
    if case.content_type:
        return call(case.url, case.body, content_type=case.content_type, headers=headers)
    return call(case.url, case.body, headers=headers)


def run(cases_: list[Case], client: Client, token: str) -> Tally:
    """Runs on a committing database (transactional_db): the actions' durable transactions and on_commit hooks run as
    in production, and a case that broke a transaction cannot hide behind the test's own."""
    import logging

    tally = Tally()
    quiet = logging.getLogger("django.request"), logging.getLogger("console.auth")
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)  # thousands of 4xx warnings; the tally names what matters
    try:
        for case in cases_:
            _one(tally, case, client, token)
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    return tally


def _one(tally: Tally, case: Case, client: Client, token: str) -> None:
    try:
        response = send(client, case, token)
    except Exception as e:  # no answer at all: the stack raised (the test client re-raises)
        tally.add("http_500", case, f"{type(e).__name__}: {e}")
        return
    verdict, detail = judge(response, case)
    tally.add(verdict, case, detail)
