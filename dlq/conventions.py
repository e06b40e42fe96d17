"""The dead-letter conventions of the frameworks services use, recognised from a message with no configuration.

Each recogniser reads one framework's headers (and, where it writes one, its envelope) as that framework documents
them, and gives the same normalised fields: where the message came from and its position there, the root cause's
exception type (the grouping key), its message, the stack trace, the message type, the correlation id, when it first
failed, how many times it was delivered, and where it failed (consumer group, connector, consumer, endpoint, function).

    Spring Kafka      `kafka_dlt-*` headers (or `kafka_*` without "dlt-"); partition, offset as big-endian binary
    Kafka Connect     `__connect.errors.*` headers (sink connectors' DLQ with context headers enabled)
    MassTransit       `MT-Fault-*` headers and its JSON envelope, on `<queue>_error` and `<queue>_skipped`
    NServiceBus       `NServiceBus.ExceptionInfo.*`, `NServiceBus.FailedQ`, `NServiceBus.TimeOfFailure`
    AWS Lambda        on-failure destination records (JSON: requestContext, requestPayload, responsePayload) and the
                      attributes of its legacy DLQs (RequestID, ErrorCode, ErrorMessage)
    NATS JetStream    max-deliveries advisories (dlq/advisories.py turns them into Switchyard's own headers)

Conventions that are not built in are mapped per source in the connections file (`dead_letters`, README "Dead-letter
conventions"): each field from a header name or a JMESPath into the JSON body.

Pure functions: no Django, no broker. recognise() never raises for any input; ingest records a problem it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import jmespath

SPRING_KAFKA = "spring-kafka"
KAFKA_CONNECT = "kafka-connect"
MASSTRANSIT = "masstransit"
NSERVICEBUS = "nservicebus"
LAMBDA_DESTINATION = "lambda-destination"
LAMBDA_DLQ = "lambda-dlq"
NATS_ADVISORY = "nats-max-deliveries"
# Amazon SNS subscriptions' DLQs (read by dlq/sns.py, not here: the envelope says where, not why, a delivery failed).
SNS_ENVELOPE = "sns-envelope"
SNS_RAW = "sns-raw"
MAPPED = "mapped"  # the source's mapping in the connections file

LABELS = {
    SPRING_KAFKA: "Spring Kafka",
    KAFKA_CONNECT: "Kafka Connect",
    MASSTRANSIT: "MassTransit",
    NSERVICEBUS: "NServiceBus",
    LAMBDA_DESTINATION: "AWS Lambda on-failure destination",
    LAMBDA_DLQ: "AWS Lambda dead-letter queue",
    NATS_ADVISORY: "NATS JetStream max deliveries",
    SNS_ENVELOPE: "Amazon SNS subscription (envelope)",
    SNS_RAW: "Amazon SNS subscription (raw delivery)",
    MAPPED: "mapped in the connections file",
}

# Queues these frameworks dead-letter into, by name (discovery finds them without a redrive policy or a DLX).
QUEUE_SUFFIXES = ("_error", "_skipped")  # MassTransit: <queue>_error, <queue>_skipped
QUEUE_NAMES = ("error",)  # NServiceBus's default error queue

# The fields a convention (or a mapping) can fill; `convention` says which one did.
FIELDS = (
    "origin",
    "origin_partition",
    "origin_offset",
    "exception_type",
    "exception_message",
    "stacktrace",
    "message_type",
    "correlation_id",
    "failed_at",
    "delivery_count",
    "failed_in",
    "reason",
)


@dataclass
class Recognised:
    convention: str
    origin: str = ""
    origin_partition: int | None = None
    origin_offset: int | None = None
    exception_type: str = ""
    exception_message: str = ""
    stacktrace: str = ""
    message_type: str = ""
    correlation_id: str = ""
    failed_at: datetime | None = None
    delivery_count: int | None = None
    failed_in: str = ""
    reason: str = ""

    def filled(self) -> dict[str, Any]:
        """The fields this convention found (empty strings and None left out)."""
        return {
            f.name: value
            for f in fields(self)
            if f.name != "convention" and (value := getattr(self, f.name)) not in ("", None)
        }


class Headers:
    """Headers looked up by name without regard to case; values as bytes whatever the adapter gave."""

    def __init__(self, headers: Mapping[str, Any]):
        self._by_name: dict[str, bytes] = {}
        for name, value in (headers or {}).items():
            self._by_name.setdefault(str(name).lower(), _as_bytes(value))

    def raw(self, name: str) -> bytes | None:
        return self._by_name.get(name.lower())

    def text(self, name: str, limit: int = 100_000) -> str:
        value = self.raw(name)
        return "" if value is None else value[:limit].decode("utf-8", "replace").replace("\x00", "\ufffd")

    def has_prefix(self, prefix: str) -> bool:
        prefix = prefix.lower()
        return any(name.startswith(prefix) for name in self._by_name)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if value is None:
        return b""
    return str(value).encode("utf-8", "surrogatepass")


# --- the recognisers: (headers, body, destination) -> Recognised | None ---


def spring_kafka(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """DeadLetterPublishingRecoverer: `kafka_dlt-original-topic`, `-partition` (4-byte big-endian int), `-offset`
    (8-byte big-endian long), `-consumer-group`, `kafka_dlt-exception-fqcn`, `-cause-fqcn`, `-message`,
    `-stacktrace`; the same names without "dlt-" when it publishes elsewhere than a DLT (KafkaHeaders)."""
    prefix = next((p for p in ("kafka_dlt-", "kafka_") if headers.raw(p + "original-topic") is not None), None)
    if prefix is None:
        prefix = next((p for p in ("kafka_dlt-", "kafka_") if headers.raw(p + "exception-fqcn") is not None), None)
    if prefix is None:
        return None
    stacktrace = headers.text(prefix + "exception-stacktrace")
    # The listener's exception comes wrapped (ListenerExecutionFailedException): the root cause is the last
    # "Caused by:" of the trace, else the cause the recoverer names, else the exception itself.
    root = root_cause(stacktrace)
    cause = headers.text(prefix + "exception-cause-fqcn", 300)
    exception_type = (root[0] if root else "") or cause or headers.text(prefix + "exception-fqcn", 300)
    message = root[1] if root else headers.text(prefix + "exception-message")
    key_problem = headers.text(prefix + "key-exception-fqcn", 300)  # a key that did not deserialize
    if not exception_type and key_problem:
        exception_type = key_problem
        message = headers.text(prefix + "key-exception-message")
        stacktrace = headers.text(prefix + "key-exception-stacktrace")
    return Recognised(
        SPRING_KAFKA,
        origin=headers.text(prefix + "original-topic", 500),
        origin_partition=_big_endian(headers.raw(prefix + "original-partition"), 4),
        origin_offset=_big_endian(headers.raw(prefix + "original-offset"), 8),
        exception_type=exception_type,
        exception_message=message,
        stacktrace=stacktrace,
        # Retry topics count the attempts: a 4-byte int, or one byte (BigInteger.toByteArray) before Spring Kafka 3;
        # a plain DLT does not say.
        delivery_count=_attempts(headers.raw("retry_topic-attempts")),
        failed_in=headers.text(prefix + "original-consumer-group", 300),
    )


CONNECT = "__connect.errors."


def kafka_connect(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """DeadLetterQueueReporter with errors.deadletterqueue.context.headers.enable: `__connect.errors.topic`,
    `.partition` and `.offset` (decimal text), `.connector.name`, `.task.id`, `.stage`, `.class.name`,
    `.exception.class.name`, `.exception.message`, `.exception.stacktrace`."""
    if not headers.has_prefix(CONNECT):
        return None
    stacktrace = headers.text(CONNECT + "exception.stacktrace")
    root = root_cause(stacktrace)
    connector = headers.text(CONNECT + "connector.name", 200)
    task = headers.text(CONNECT + "task.id", 20)
    stage = headers.text(CONNECT + "stage", 50)
    return Recognised(
        KAFKA_CONNECT,
        origin=headers.text(CONNECT + "topic", 500),
        origin_partition=_decimal(headers.text(CONNECT + "partition", 30)),
        origin_offset=_decimal(headers.text(CONNECT + "offset", 30)),
        exception_type=(root[0] if root else "") or headers.text(CONNECT + "exception.class.name", 300),
        exception_message=root[1] if root else headers.text(CONNECT + "exception.message"),
        stacktrace=stacktrace,
        failed_in=" ".join(filter(None, [connector, f"task {task}" if task else "", stage and f"({stage})"])),
        reason=stage.lower(),
    )


def masstransit(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """MassTransit's error and skipped queues: the message as it came (its JSON envelope: messageType, correlationId,
    conversationId, destinationAddress, faultAddress, sentTime, message) with `MT-Fault-*` transport headers and
    `MT-Reason` (fault, dead-letter). MT-Fault-ExceptionType is already the base exception (GetBaseException)."""
    reason = headers.text("MT-Reason", 50)
    named_so = destination.endswith(("_error", "_skipped"))
    marked = headers.has_prefix("MT-Fault-") or reason or (named_so and headers.has_prefix("MT-"))
    if not marked and not (named_so and b'"messageType"' in body):
        return None
    envelope = _envelope(body)
    if not marked and not (isinstance(envelope, dict) and "messageType" in envelope and "message" in envelope):
        return None
    envelope = envelope if isinstance(envelope, dict) else {}
    types = envelope.get("messageType")
    first_type = types[0] if isinstance(types, list) and types else headers.text("MT-MessageType", 300)
    message_type = headers.text("MT-Fault-MessageType", 300) or _urn_type(first_type)
    # The skipped queue (no consumer took the message type): DeadLetterTransportFilter sends it with reason
    # "dead-letter" and no exception.
    skipped = reason in ("dead-letter", "skip") or destination.endswith("_skipped")
    origin = _queue(headers.text("MT-Fault-InputAddress", 1000)) or _queue(_str(envelope.get("destinationAddress")))
    if not origin:
        origin = destination.removesuffix("_error").removesuffix("_skipped")
    retries = _decimal(headers.text("MT-Fault-RetryCount", 30))
    redeliveries = _decimal(headers.text("MT-Fault-RedeliveryCount", 30))
    deliveries = None
    if retries is not None or redeliveries is not None:
        deliveries = 1 + (retries or 0) + (redeliveries or 0)  # the first delivery, its retries, its redeliveries
    return Recognised(
        MASSTRANSIT,
        origin=origin,
        exception_type=headers.text("MT-Fault-ExceptionType", 300) or ("masstransit:skipped" if skipped else ""),
        exception_message=headers.text("MT-Fault-Message")
        or ("no consumer on the endpoint took this message type" if skipped else ""),
        stacktrace=headers.text("MT-Fault-StackTrace"),
        message_type=message_type,
        correlation_id=_str(envelope.get("correlationId")) or _str(envelope.get("conversationId")),
        failed_at=_when(headers.text("MT-Fault-Timestamp", 100)) or _when(_str(envelope.get("sentTime"))),
        delivery_count=deliveries,
        failed_in=headers.text("MT-Fault-ConsumerType", 300),
        reason="skipped" if skipped else reason,
    )


NSB = "NServiceBus."


def nservicebus(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """NServiceBus's error queue: `NServiceBus.FailedQ` (queue, or queue@machine), `NServiceBus.ExceptionInfo.*`
    (ExceptionType, InnerExceptionType, Message, StackTrace = the exception's ToString()), `NServiceBus.TimeOfFailure`
    ("yyyy-MM-dd HH:mm:ss:ffffff Z"), `NServiceBus.EnclosedMessageTypes`, `NServiceBus.CorrelationId`,
    `NServiceBus.ProcessingEndpoint`, `NServiceBus.Retries` (delayed retries)."""
    if headers.raw(NSB + "FailedQ") is None and not headers.has_prefix(NSB + "ExceptionInfo."):
        return None
    stacktrace = headers.text(NSB + "ExceptionInfo.StackTrace")
    root = root_cause(stacktrace)
    inner = headers.text(NSB + "ExceptionInfo.InnerExceptionType", 300)
    enclosed = headers.text(NSB + "EnclosedMessageTypes", 2000)
    retries = _decimal(headers.text(NSB + "Retries", 30))
    return Recognised(
        NSERVICEBUS,
        origin=headers.text(NSB + "FailedQ", 500).split("@", 1)[0],
        exception_type=(root[0] if root else "") or inner or headers.text(NSB + "ExceptionInfo.ExceptionType", 300),
        exception_message=root[1] if root else headers.text(NSB + "ExceptionInfo.Message"),
        stacktrace=stacktrace,
        # "Ns.Type, Assembly, Version=..., Culture=..., PublicKeyToken=...;Ns.IBase, ...": the first type's name.
        message_type=enclosed.split(";", 1)[0].split(",", 1)[0].strip(),
        correlation_id=headers.text(NSB + "CorrelationId", 200) or headers.text(NSB + "ConversationId", 200),
        failed_at=_nsb_time(headers.text(NSB + "TimeOfFailure", 100)),
        delivery_count=retries + 1 if retries is not None else None,  # the delayed retries and the first delivery
        failed_in=headers.text(NSB + "ProcessingEndpoint", 300),
    )


def lambda_destination(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """An asynchronous invocation's on-failure destination record: {version, timestamp, requestContext{requestId,
    functionArn, condition, approximateInvokeCount}, requestPayload, responseContext{statusCode, executedVersion,
    functionError}, responsePayload{errorType, errorMessage, stackTrace}}."""
    if b'"requestContext"' not in body:  # most bodies: not parsed here at all
        return None
    record = _envelope(body)
    if not (isinstance(record, dict) and isinstance(record.get("requestContext"), dict)):
        return None
    context = record["requestContext"]
    if "functionArn" not in context and "condition" not in context:
        return None
    response = record.get("responsePayload")
    response = response if isinstance(response, dict) else {}
    trace = response.get("stackTrace")
    condition = _str(context.get("condition"))
    return Recognised(
        LAMBDA_DESTINATION,
        exception_type=_str(response.get("errorType"))[:300] or (f"lambda:{condition}" if condition else "lambda"),
        exception_message=_str(response.get("errorMessage")),
        stacktrace="\n".join(map(str, trace)) if isinstance(trace, list) else _str(trace),
        correlation_id=_str(context.get("requestId"))[:200],
        failed_at=_when(_str(record.get("timestamp"))),
        delivery_count=_int(context.get("approximateInvokeCount")),
        failed_in=_str(context.get("functionArn"))[:300],
        reason=condition[:100],
    )


def lambda_dlq(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """A legacy Lambda dead-letter queue: the event as it came, with the attributes RequestID, ErrorCode (the
    3-digit status) and ErrorMessage (its first 1 KB; for an unhandled error, the JSON of errorType and
    errorMessage)."""
    if headers.raw("RequestID") is None or headers.raw("ErrorCode") is None:
        return None
    message = headers.text("ErrorMessage", 2000)
    parsed = _envelope(message.encode())
    exception_type = ""
    if isinstance(parsed, dict):
        error_type, error_message = parsed.get("errorType"), parsed.get("errorMessage")
        exception_type = error_type[:300] if isinstance(error_type, str) else ""
        message = error_message if isinstance(error_message, str) and error_message else message
    return Recognised(
        LAMBDA_DLQ,
        exception_type=exception_type or f"lambda:error {headers.text('ErrorCode', 10)}".strip(),
        exception_message=message,
        correlation_id=headers.text("RequestID", 200),
    )


def nats_advisory(headers: Headers, body: bytes, destination: str) -> Recognised | None:
    """A message a max-deliveries advisory named: dlq/advisories.py has already put the facts in Switchyard's own
    headers, which headers.parse() reads; this only names the convention."""
    if headers.text("x-exception-type", 100) != "nats:max_deliveries":
        return None
    return Recognised(NATS_ADVISORY)


RECOGNISERS: tuple[Callable[[Headers, bytes, str], Recognised | None], ...] = (
    spring_kafka,
    kafka_connect,
    masstransit,
    nservicebus,
    lambda_destination,
    lambda_dlq,
    nats_advisory,
)


def recognise(
    headers: Mapping[str, Any], body: bytes | None, destination: str = "", mapping: Mapping | None = None
) -> tuple[Recognised | None, list[str]]:
    """The convention this dead letter follows, with its fields, and the problems met on the way (never raises).

    A source's mapping (from the connections file) comes first and wins field by field; the built-in recognisers
    then fill what it left empty, the first that recognises the message naming the convention."""
    problems: list[str] = []
    try:
        view = Headers(headers)
    except Exception as exc:  # noqa: BLE001 - then nothing is recognised, and the letter says why
        return None, [f"the headers could not be read for conventions: {_describe(exc)}"]
    body = body or b""
    found: Recognised | None = None
    if mapping:
        try:
            found = apply_mapping(mapping, view, body)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the connections file's mapping could not be applied: {_describe(exc)}")
    for recogniser in RECOGNISERS:
        try:
            builtin = recogniser(view, body, destination)
        except Exception as exc:  # noqa: BLE001 - a framework's headers in a shape it never writes
            problems.append(f"{recogniser.__name__} headers could not be read: {_describe(exc)}")
            continue
        if builtin is None:
            continue
        if found is None:
            return builtin, problems
        for name, value in builtin.filled().items():
            if getattr(found, name) in ("", None):
                setattr(found, name, value)
        break
    return found, problems


# --- mappings from the connections file ---


def apply_mapping(mapping: Mapping[str, Any], headers: Headers, body: bytes) -> Recognised | None:
    """`mapping`: field -> a list of {"header": name} / {"path": JMESPath into the JSON body}, the first that gives
    a value winning (brokers.connections.DeadLetterMapping validates it). None when it found nothing."""
    document: Any = _UNSET
    found = Recognised(MAPPED)
    any_value = False
    for name, sources in mapping.items():
        if name not in FIELDS:
            continue
        for source in sources if isinstance(sources, list | tuple) else [sources]:
            value: Any = None
            if source.get("header"):
                raw = headers.raw(source["header"])
                value = None if raw is None else raw.decode("utf-8", "replace")
                if raw is not None and name in ("origin_partition", "origin_offset") and not value.strip().isdigit():
                    value = _big_endian(raw, len(raw)) if len(raw) in (4, 8) else None
            elif source.get("path"):
                if document is _UNSET:
                    document = _envelope(body)
                value = jmespath.search(source["path"], document) if document is not None else None
            converted = _convert(name, value)
            if converted not in ("", None):
                setattr(found, name, converted)
                any_value = True
                break
    return found if any_value else None


def _convert(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("origin_partition", "origin_offset", "delivery_count"):
        return value if isinstance(value, int) and not isinstance(value, bool) else _decimal(str(value))
    if name == "failed_at":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _when(str(int(value)))
        return _when(str(value))
    if isinstance(value, list | dict):
        value = json.dumps(value) if name != "stacktrace" else "\n".join(map(str, value))
    text = str(value)
    return _queue(text) if name == "origin" else text


# --- reading the values ---

_UNSET = object()
# A Java stack trace's causes start a line ("Caused by: fqcn: message"; a Suppressed block's are indented), a .NET
# exception's ToString() puts each inner one after " ---> " ("Type: message").
_JAVA_CAUSE = re.compile(r"^Caused by: ([\w$.]+)(?::[ \t]?(.*))?$", re.MULTILINE)
_DOTNET_INNER = re.compile(r"^ ---> ([\w.`+]+(?:\[[\w.,` \[\]]*\])?)(?:: (.*))?$", re.MULTILINE)


def root_cause(stacktrace: str) -> tuple[str, str] | None:
    """(type, message) of the innermost cause a Java or .NET stack trace names, None when it names none."""
    if not stacktrace:
        return None
    for pattern in (_JAVA_CAUSE, _DOTNET_INNER):
        matches = pattern.findall(stacktrace)
        if matches:
            last = matches[-1]
            return last[0][:300], (last[1] or "").strip()
    return None


def _big_endian(value: bytes | None, size: int) -> int | None:
    """Spring writes partitions as 4-byte and offsets as 8-byte big-endian integers; a producer writing text
    digits instead is read too."""
    if value is None:
        return None
    if len(value) == size:
        return int.from_bytes(value, "big", signed=True)
    return _decimal(value[:30].decode("ascii", "replace"))


def _attempts(value: bytes | None) -> int | None:
    if not value or len(value) > 4:
        return None
    return int.from_bytes(value, "big", signed=True)


def _decimal(value: str) -> int | None:
    value = (value or "").strip()
    if value[:1] in "+-":
        sign, digits = value[:1], value[1:]
    else:
        sign, digits = "", value
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        return None
    return int(sign + digits)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _decimal(str(value)) if value is not None else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _when(value: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # epoch milliseconds or seconds
        number = int(value[:30])
        try:
            return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    # .NET's "O" format has seven fractional digits; Python takes up to six.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _nsb_time(value: str) -> datetime | None:
    """NServiceBus's wire format, "2024-05-06 07:08:09:123456 Z" (UTC)."""
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S:%f Z").replace(tzinfo=UTC)
    except ValueError:
        return _when(value)


def _queue(address: str) -> str:
    """A MassTransit address (rabbitmq://host/vhost/queue?bind=true, queue:name) as the queue's name."""
    address = (address or "").strip()
    if address.startswith("queue:"):
        return address[len("queue:") :].split("?", 1)[0]
    if "://" in address:
        return address.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return address


def _urn_type(value: str) -> str:
    """ "urn:message:Company.Contracts:OrderSubmitted" -> "Company.Contracts.OrderSubmitted" (the name MassTransit's
    MT-Fault-MessageType gives the same type)."""
    value = _str(value)
    if value.startswith("urn:message:"):
        return value[len("urn:message:") :].replace(":", ".")
    return value


def _envelope(body: bytes) -> Any:
    """The body as JSON, None when it is not JSON (most dead letters are; a body over 1 MB is not read for this)."""
    if not body or len(body) > 1_000_000 or body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def is_framework_queue(name: str) -> bool:
    """A queue these frameworks dead-letter into by name: MassTransit's <queue>_error and <queue>_skipped,
    NServiceBus's error."""
    return name in QUEUE_NAMES or name.endswith(QUEUE_SUFFIXES)


# Facts about the last failure, not part of the message: a replay leaves them out (dlq.operations), as it does the
# generic ones, so a consumer that fails it again writes fresh ones and a retry counter starts from the beginning.
REPLAY_DROPPED_PREFIXES = (
    "kafka_exception-", "kafka_key-exception-", "kafka_original-", "retry_topic-", CONNECT.lower(),
    "nservicebus.exceptioninfo.",
)  # fmt: skip
REPLAY_DROPPED_HEADERS = frozenset(
    {"mt-reason", "nservicebus.failedq", "nservicebus.timeoffailure", "nservicebus.retries",
     "nservicebus.retries.timestamp"}
)  # fmt: skip
# (A legacy Lambda DLQ's RequestID, ErrorCode and ErrorMessage are kept: names that general could be a message's own.)


# The failure headers the recognisers read: their values stay visible to a user who may not read message contents
# (dlq.contents), as the generic failure headers' do. Payload-like headers (MT-Host-*, original keys) are not here.
HEADER_NAMES = frozenset(
    [f"{p}{n}" for p in ("kafka_dlt-", "kafka_") for n in (
        "original-topic", "original-partition", "original-offset", "original-consumer-group", "original-timestamp",
        "original-timestamp-type", "exception-fqcn", "exception-cause-fqcn", "exception-message",
        "exception-stacktrace", "key-exception-fqcn", "key-exception-message", "key-exception-stacktrace")]
    + ["retry_topic-attempts"]
    + [CONNECT + n for n in ("topic", "partition", "offset", "connector.name", "task.id", "stage", "class.name",
                             "exception.class.name", "exception.message", "exception.stacktrace")]
    + ["MT-Reason", "MT-Fault-ExceptionType", "MT-Fault-InputAddress", "MT-Fault-Message", "MT-Fault-MessageType",
       "MT-Fault-ConsumerType", "MT-Fault-Timestamp", "MT-Fault-StackTrace", "MT-Fault-RetryCount",
       "MT-Fault-RedeliveryCount", "MT-MessageType"]
    + [NSB + n for n in ("FailedQ", "ExceptionInfo.ExceptionType", "ExceptionInfo.InnerExceptionType",
                         "ExceptionInfo.Message", "ExceptionInfo.StackTrace", "ExceptionInfo.Source",
                         "ExceptionInfo.HelpLink", "TimeOfFailure", "EnclosedMessageTypes", "CorrelationId",
                         "ConversationId", "ProcessingEndpoint", "Retries")]
    + ["RequestID", "ErrorCode", "ErrorMessage"]
)  # fmt: skip
