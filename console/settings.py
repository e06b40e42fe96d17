"""Switchyard settings: one env-driven file.

Every setting comes from an environment variable with a default that lets `make run` and the tests start with no
extra configuration. The typed helpers below fail loudly (ImproperlyConfigured) on a value they cannot parse, so a
typo in a deployment stops the process at start-up rather than misbehaving later.
"""

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from brokers import connections as _connections

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def envsecret(name: str, default: str | None = None) -> str | None:
    """Like envstr, but NAME_FILE (a mounted secret) wins over NAME."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {e}") from e
    return envstr(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as e:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from e
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
TESTING = envbool("SWITCHYARD_TESTING", False)
SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "switchyard-insecure-development-key-do-not-deploy"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

# Namespaces the Celery queue and Channels groups, so two consoles (or two test runs) can share one Redis.
NAMESPACE = envstr("SWITCHYARD_NAMESPACE", "switchyard")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "console",
    "sagas",
    "dlq",
    "outbox",
    "monitoring",
    "demo",
    "formats",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "console.inputs.RejectNulQueryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "console.auth.ApiTokenMiddleware",
    "console.auth.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "console.urls"
ASGI_APPLICATION = "console.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.access.roles",
            ],
        },
    }
]

DATABASE_URL = envsecret("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/switchyard")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database (postgresql://...)")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envsecret("REDIS_URL", "redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        # channels_redis with a pool that waits when full: redis-py 8's fails at 100 connections (ADR 0043).
        "BACKEND": "console.channel_layer.BlockingRedisChannelLayer",
        "CONFIG": {
            # socket_timeout: with redis-py 8 the default makes idle WebSockets drop after ~5 s.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 10}],
            "prefix": f"{NAMESPACE}:asgi",
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = NAMESPACE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {}
# Several beats may run (replicas): only the holder of a lease in PostgreSQL sends jobs; a standby takes over within
# BEAT_LEASE_SECONDS plus a third of it when the active one dies (console/beat.py).
CELERY_BEAT_SCHEDULER = "console.beat.LeasedScheduler"
BEAT_LEASE_SECONDS = envint("BEAT_LEASE_SECONDS", 30, minimum=3)
# The worker logs through LOGGING below (and its secrets filter) instead of replacing the root handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In DEBUG and tests WhiteNoise serves straight from the finders; no collectstatic step needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; kept default-compatible.
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this site's own static files only, no
# inline script, style attribute or eval — so markup that slips through (a `javascript:` link, an injected <script>
# or `onclick=`) cannot run. connect-src 'self' covers the same-host WebSocket (ws:/wss:, CSP level 3). htmx's
# indicator <style> and eval are off in templates/base.html's htmx-config. The admin (user management) keeps it too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Brokers: a broker whose variable is unset is simply not configured.
KAFKA_BOOTSTRAP_SERVERS = envstr("KAFKA_BOOTSTRAP_SERVERS")
SQS_ENDPOINT_URL = envstr("SQS_ENDPOINT_URL")
AWS_REGION = envstr("AWS_REGION", "us-east-1")
AWS_ACCESS_KEY_ID = envsecret("AWS_ACCESS_KEY_ID")
AWS_SECRET_ACCESS_KEY = envsecret("AWS_SECRET_ACCESS_KEY")
RABBITMQ_URL = envsecret("RABBITMQ_URL")
RABBITMQ_MANAGEMENT_URL = envsecret("RABBITMQ_MANAGEMENT_URL")
NATS_URL = envstr("NATS_URL")

# Connections: any number per kind, from the file SWITCHYARD_CONNECTIONS names (brokers/connections.py, README
# "Connections"). Each of the old one-broker variables makes the `default` connection of its kind; a kind with
# neither is simply not configured. kind -> name -> validated spec; secrets inside are masked unless asked for.
SWITCHYARD_CONNECTIONS = envstr("SWITCHYARD_CONNECTIONS")
_legacy_brokers: dict[str, dict] = {}
if KAFKA_BOOTSTRAP_SERVERS:
    _legacy_brokers["kafka"] = {"bootstrap_servers": KAFKA_BOOTSTRAP_SERVERS}
if SQS_ENDPOINT_URL or AWS_ACCESS_KEY_ID:
    _legacy_brokers["sqs"] = {
        "endpoint_url": SQS_ENDPOINT_URL,
        "region": AWS_REGION,
        "access_key_id": AWS_ACCESS_KEY_ID,
        "secret_access_key": AWS_SECRET_ACCESS_KEY,
    }
if RABBITMQ_URL:
    _legacy_brokers["rabbitmq"] = {"url": RABBITMQ_URL, "management_url": RABBITMQ_MANAGEMENT_URL}
if NATS_URL:
    _legacy_brokers["nats"] = {"servers": NATS_URL}
try:
    BROKERS = _connections.load(SWITCHYARD_CONNECTIONS, os.environ, _legacy_brokers)
except _connections.ConnectionsError as e:
    raise ImproperlyConfigured(str(e)) from None
del _legacy_brokers

# Operations: how many per-item errors one operation keeps (the rest are counted, not stored).
OPERATION_MAX_ERRORS = envint("OPERATION_MAX_ERRORS", 200, minimum=1)
# Four eyes: operation kinds (e.g. "dlq.replay,kafka_offset_reset") that wait for a second operator's approval.
OPERATION_APPROVAL_KINDS = envlist("OPERATION_APPROVAL_KINDS", [])
# Bodies, payloads and saga data may hold personal or secret data: the least role that reads them (console.access).
# "viewer": everyone who sees a page; "operator": viewers see that something failed and why, not what it carried.
CONTENTS_ROLE = envchoice("SWITCHYARD_CONTENTS_ROLE", "viewer", ("viewer", "operator"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # No secret of a connection reaches a log line, whoever logs it (console/logfilter.py).
    "filters": {"scrub_secrets": {"()": "console.logfilter.ScrubSecrets"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["scrub_secrets"]}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

if TESTING:
    # Fast hashing for the test world (also in the live daphne the browser tests log in to). Never in production:
    # SWITCHYARD_TESTING is set only by tests/env.py.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- outbox ---
# Payloads larger than this travel as a claim check (a reference to an OutboxPayload row), not as bytes.
OUTBOX_CLAIM_CHECK_BYTES = envint("OUTBOX_CLAIM_CHECK_BYTES", 256 * 1024, minimum=1)
# A row that failed this many times becomes `failed` and keeps blocking its key until retried or skipped.
OUTBOX_MAX_ATTEMPTS = envint("OUTBOX_MAX_ATTEMPTS", 8, minimum=1)
OUTBOX_BACKOFF_BASE_MS = envint("OUTBOX_BACKOFF_BASE_MS", 500, minimum=1)
OUTBOX_BACKOFF_MAX_MS = envint("OUTBOX_BACKOFF_MAX_MS", 300_000, minimum=1)
# A connection that does not answer: its rows wait (no attempt spent) this long, doubled per failure, capped.
OUTBOX_CONNECTION_BACKOFF_BASE_MS = envint("OUTBOX_CONNECTION_BACKOFF_BASE_MS", 1000, minimum=1)
OUTBOX_CONNECTION_BACKOFF_MAX_MS = envint("OUTBOX_CONNECTION_BACKOFF_MAX_MS", 60_000, minimum=1)
OUTBOX_BATCH_SIZE = envint("OUTBOX_BATCH_SIZE", 2000, minimum=1)
# The relay wakes on NOTIFY; this is the fallback poll when no notification comes (e.g. a backoff expires).
OUTBOX_POLL_MS = envint("OUTBOX_POLL_MS", 1000, minimum=10)
OUTBOX_RETENTION_HOURS = envint("OUTBOX_RETENTION_HOURS", 24, minimum=1)
# Purged by the relay every few minutes and by this beat job, so rows go even when no relay runs.
OUTBOX_PURGE_SECONDS = envint("OUTBOX_PURGE_SECONDS", 600, minimum=10)
CELERY_BEAT_SCHEDULE["outbox-purge"] = {"task": "outbox.tasks.purge", "schedule": OUTBOX_PURGE_SECONDS}
# A killed relay leaves a heartbeat that only goes stale: this job tells the open pages (outbox.tasks.watch_relays).
CELERY_BEAT_SCHEDULE["outbox-watch-relays"] = {"task": "outbox.tasks.watch_relays", "schedule": 20.0}

# --- sagas ---
# The Kafka topic `manage.py ingest_saga_events` consumes, and its consumer group.
SAGA_EVENTS_TOPIC = envstr("SAGA_EVENTS_TOPIC", "switchyard.saga-events")
SAGA_INGEST_GROUP = envstr("SAGA_INGEST_GROUP", "switchyard-saga-ingest")
# Several ingest_saga_events processes share the topic's partitions by lease: a killed one's partitions move to the
# others within this many seconds.
SAGA_INGEST_LEASE_SECONDS = envint("SAGA_INGEST_LEASE_SECONDS", 15, minimum=2)
# The Kafka connection that topic is on (a name from the connections file); empty: Kafka's only or default one.
SAGA_EVENTS_CONNECTION = envstr("SAGA_EVENTS_CONNECTION", "")
# A saga's context JSON larger than this is replaced by a marker saying how large it was.
SAGA_CONTEXT_MAX_BYTES = envint("SAGA_CONTEXT_MAX_BYTES", 16_384, minimum=256)
# Running or compensating in the same state for longer than this counts as stuck on the dashboard.
SAGA_STUCK_AFTER_SECONDS = envint("SAGA_STUCK_AFTER_SECONDS", 900, minimum=1)
# SDK steps: attempts per execute / compensate, and the first retry delay (doubled each time, with jitter).
SAGA_STEP_ATTEMPTS = envint("SAGA_STEP_ATTEMPTS", 3, minimum=1)
SAGA_RETRY_BASE_SECONDS = envint("SAGA_RETRY_BASE_SECONDS", 2, minimum=0)
# Modules that define SDK sagas (sdk.define); every web and worker process imports them at start-up.
SAGA_DEFINITION_MODULES = envlist("SAGA_DEFINITION_MODULES", [])

# --- dlq ---
# Kafka topics matching these patterns (fnmatch) are dead-letter queues; the suffixes map a DLQ back to its origin.
# Avro .avsc files and Protobuf descriptor sets mapped to topics and queues by pattern, for bodies no registry
# names (formats/local.py, README "Message formats"); unset: none
SWITCHYARD_SCHEMAS = envstr("SWITCHYARD_SCHEMAS")
# The schema catalogue (formats/catalogue.py): how often beat reads new outbox rows and dead letters into it, and the
# event types whose outbox.publish() validates the payload against their registered schema (opt-in, comma-separated)
SCHEMA_CATALOGUE_SECONDS = envint("SCHEMA_CATALOGUE_SECONDS", 60)
OUTBOX_VALIDATE_TYPES = envlist("OUTBOX_VALIDATE_TYPES", [])
CELERY_BEAT_SCHEDULE["formats-catalogue"] = {
    "task": "formats.tasks.refresh_catalogue",
    "schedule": float(SCHEMA_CATALOGUE_SECONDS),
}
DLQ_KAFKA_PATTERNS = envlist("DLQ_KAFKA_PATTERNS", ["*.DLQ", "*-dlt", "*.DLT"])
DLQ_SUFFIXES = envlist("DLQ_SUFFIXES", [".DLQ", "-dlt", ".DLT", "-dlq", "_error", "_skipped", "_dead_letter"])
# RabbitMQ queues and NATS streams to ingest besides what discovery finds (comma-separated names).
DLQ_RABBITMQ_QUEUES = envlist("DLQ_RABBITMQ_QUEUES", [])
DLQ_NATS_STREAMS = envlist("DLQ_NATS_STREAMS", ["DLQ"])
# Bodies larger than this are stored outside the row (bytes).
DLQ_INLINE_BODY_MAX = envint("DLQ_INLINE_BODY_MAX", 256 * 1024, minimum=1024)
# Loop guard: a dead letter replayed this many times needs an explicit override to be replayed again.
DLQ_MAX_REPLAYS = envint("DLQ_MAX_REPLAYS", 3, minimum=1)
# Archived and discarded dead letters are purged after this many days.
DLQ_RETENTION_DAYS = envint("DLQ_RETENTION_DAYS", 14, minimum=1)
# Seconds between ingest rounds when every source is idle, and between discovery runs.
DLQ_INGEST_IDLE_SECONDS = envint("DLQ_INGEST_IDLE_SECONDS", 1, minimum=0)
DLQ_DISCOVERY_SECONDS = envint("DLQ_DISCOVERY_SECONDS", 60, minimum=5)
# Several dlq_ingest processes share the sources by lease (dlq.leases): a killed one's sources move to the others
# within this many seconds. Renewed every third of it.
DLQ_INGEST_LEASE_SECONDS = envint("DLQ_INGEST_LEASE_SECONDS", 15, minimum=2)
# A source whose poll fails (or whose DLQ is gone) waits a random time up to base × 2^(failures − 1) seconds, at most
# the cap, before its next poll (exponential backoff with full jitter), so it neither spins nor delays the others.
DLQ_SOURCE_BACKOFF_BASE_SECONDS = envint("DLQ_SOURCE_BACKOFF_BASE_SECONDS", 1, minimum=1)
DLQ_SOURCE_BACKOFF_MAX_SECONDS = envint("DLQ_SOURCE_BACKOFF_MAX_SECONDS", 300, minimum=1)
CELERY_BEAT_SCHEDULE["dlq-purge"] = {"task": "dlq.tasks.purge", "schedule": 3600}
# NATS: ingest max-deliveries advisories, kept until ingested in this stream (created by discovery).
DLQ_NATS_ADVISORIES = envbool("DLQ_NATS_ADVISORIES", True)
DLQ_NATS_ADVISORY_STREAM = envstr("DLQ_NATS_ADVISORY_STREAM", "SWITCHYARD_ADVISORIES")
# Warn when the oldest message still in a broker DLQ has lived this share of the DLQ's retention (percent).
DLQ_RETENTION_WARN_PERCENT = envint("DLQ_RETENTION_WARN_PERCENT", 50, minimum=1)
DLQ_RETENTION_CHECK_SECONDS = envint("DLQ_RETENTION_CHECK_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE["dlq-retention"] = {"task": "dlq.tasks.check_retention", "schedule": DLQ_RETENTION_CHECK_SECONDS}

# --- monitoring ---
# Seconds between sampler passes (consumer groups, queues, JetStream consumers, Celery, outbox).
SAMPLER_INTERVAL_SECONDS = envint("SAMPLER_INTERVAL_SECONDS", 15, minimum=1)
# Width of the sliding window the status rules look at (Burrow: 10 commits × 60 s).
MONITORING_STATUS_WINDOW_SECONDS = envint("MONITORING_STATUS_WINDOW_SECONDS", 600, minimum=1)
# History: per-partition rows are kept this long; target rows older than DOWNSAMPLE_AFTER keep one per 5 minutes.
MONITORING_PARTITION_RETENTION_SECONDS = envint("MONITORING_PARTITION_RETENTION_SECONDS", 86_400, minimum=60)
MONITORING_DOWNSAMPLE_AFTER_SECONDS = envint("MONITORING_DOWNSAMPLE_AFTER_SECONDS", 3_600, minimum=60)
MONITORING_RETENTION_SECONDS = envint("MONITORING_RETENTION_SECONDS", 7 * 86_400, minimum=3_600)
# A partition row is stored when its offsets change, and at least this often while they do not (ADR 0041).
MONITORING_PARTITION_HEARTBEAT_SECONDS = envint("MONITORING_PARTITION_HEARTBEAT_SECONDS", 300, minimum=1)
# RabbitMQ queues to watch besides those the management API lists (AMQP alone cannot list queues).
MONITORING_RABBITMQ_QUEUES = envlist("MONITORING_RABBITMQ_QUEUES", [])
# Alert e-mails come from this address (Django's EMAIL_* settings choose the backend).
ALERT_EMAIL_FROM = envstr("ALERT_EMAIL_FROM", "switchyard@localhost")
# One sampling pass at a time across all workers: a pass holds this lease; a worker that dies mid-pass frees it
# within this many seconds (monitoring.tasks.sample).
SAMPLER_LEASE_SECONDS = envint("SAMPLER_LEASE_SECONDS", 60, minimum=5)
# A queue of their own for the sampling jobs (deploy/k8s/sampler.yaml runs the workers that serve it); empty: the
# default queue, as `make run` and docker compose have it.
SAMPLER_QUEUE = envstr("SAMPLER_QUEUE", "")
if SAMPLER_QUEUE:
    CELERY_TASK_ROUTES = {f"monitoring.tasks.{name}": {"queue": SAMPLER_QUEUE} for name in ("sample", "downsample")}
CELERY_BEAT_SCHEDULE["monitoring-sample"] = {"task": "monitoring.tasks.sample", "schedule": SAMPLER_INTERVAL_SECONDS}
CELERY_BEAT_SCHEDULE["monitoring-downsample"] = {"task": "monitoring.tasks.downsample", "schedule": 300}

# --- drills (issue 14): production settings, login rate limit, clear refusals --- begin
# Production: neither DEBUG nor the tests. `manage.py check --deploy` is clean there (tests/drills/test_production.py).
PRODUCTION = not (DEBUG or TESTING)
if PRODUCTION:
    # Django's test client's host: never a name a production console answers to.
    ALLOWED_HOSTS = [host for host in ALLOWED_HOSTS if host != "testserver"]
# Served over HTTPS (the default in production): cookies only over HTTPS, plain http redirected, HSTS for a year.
# SWITCHYARD_HTTPS=false for a console reached over plain http on purpose (docker-compose on localhost).
HTTPS = envbool("SWITCHYARD_HTTPS", PRODUCTION)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a load balancer's probe comes over plain http inside the network
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
# Preloading is a promise about the whole domain that only its owner can make: opt in with SECURE_HSTS_PRELOAD=true.
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Behind a proxy that ends TLS and says so in X-Forwarded-Proto (set only when the proxy strips a client's own).
if envbool("SWITCHYARD_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The no-op operation demonstrates the machinery (make run, tests); it is not offered in production unless asked.
OPERATION_NOOP_STARTABLE = envbool("OPERATION_NOOP_STARTABLE", not PRODUCTION)

# Login attempts rate-limited (django-axes): after AXES_FAILURE_LIMIT failures for one username from one address, that
# pair is refused (429) for AXES_COOLOFF_TIME hours; a success resets the count. Covers /login/ and the admin's login.
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: it refuses a locked-out pair before any backend is asked
    *globals().get("AUTHENTICATION_BACKENDS", ["django.contrib.auth.backends.ModelBackend"]),
]
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = envint("AXES_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # not a line per login: failures and lockouts only

# Every 4xx says why in a short sentence (console.inputs): a bare 405 from require_POST otherwise says nothing.
MIDDLEWARE.insert(
    MIDDLEWARE.index("console.inputs.RejectNulQueryMiddleware") + 1, "console.inputs.ExplainEmptyErrorsMiddleware"
)
# The saga-event ingest's Kafka session: how long the group waits for a killed ingest before its restart takes over.
SAGA_INGEST_SESSION_TIMEOUT_MS = envint("SAGA_INGEST_SESSION_TIMEOUT_MS", 10_000, minimum=1_000)
# A replay whose broker goes down waits for it (saying so on the operation) this long before it gives up.
DLQ_REPLAY_OUTAGE_WAIT_SECONDS = envint("DLQ_REPLAY_OUTAGE_WAIT_SECONDS", 900, minimum=0)
# --- drills (issue 14) --- end

# --- sign-in (issue 17: OIDC, LDAP, roles from the identity provider; console/identity.py, oidc.py, ldap_auth.py) ---
# Kept in one block so the other settings edits (e.g. a login rate limiter's backend) merge around it.
from console import identity as _identity  # noqa: E402  (reads only os.environ; imports nothing of Django's models)

try:
    # OIDC_PROVIDERS (a JSON list, or NAME_FILE) or one provider's OIDC_ISSUER / OIDC_CLIENT_ID / OIDC_CLIENT_SECRET.
    SSO_OIDC_PROVIDERS = _identity.oidc_providers_from_env(os.environ, envsecret("OIDC_PROVIDERS"))
    # LDAP_SERVER_URI and friends; None when unset.
    SSO_LDAP = _identity.ldap_from_env(os.environ, envsecret("LDAP_BIND_PASSWORD"))
except _identity.SignInConfigError as e:
    raise ImproperlyConfigured(str(e)) from None
# A user whose identity maps to no role is refused with a page that says why; off: they sign in and see nothing.
SSO_STRICT = envbool("SSO_STRICT", True)
# Local passwords for everyone (default), or only for the bootstrap login `manage.py ensure_admin` makes.
LOCAL_PASSWORDS = envbool("LOCAL_PASSWORDS", True)
BOOTSTRAP_ADMIN = envstr("BOOTSTRAP_ADMIN", "admin")
# Every this many seconds each signed-in identity is asked of its provider again (an OIDC refresh token, an LDAP
# search): a role removed there ends the user's sessions and live sockets within this interval.
SSO_REFRESH_SECONDS = envint("SSO_REFRESH_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE["sso-revalidate"] = {"task": "console.revalidate_sign_ins", "schedule": SSO_REFRESH_SECONDS}

# Django's ModelBackend becomes one that honours LOCAL_PASSWORDS; backends listed earlier in this file (a rate
# limiter's, which must come first) stay where they are.
AUTHENTICATION_BACKENDS = [
    "console.sign_in.LocalPasswordBackend" if b == "django.contrib.auth.backends.ModelBackend" else b
    for b in globals().get("AUTHENTICATION_BACKENDS", ["django.contrib.auth.backends.ModelBackend"])
]
if SSO_LDAP:
    # Before local passwords: a directory user's name is tried against the directory first.
    AUTHENTICATION_BACKENDS.insert(
        AUTHENTICATION_BACKENDS.index("console.sign_in.LocalPasswordBackend"), "console.ldap_auth.DirectoryBackend"
    )
    globals().update(_identity.django_auth_ldap_settings(SSO_LDAP))
if SSO_OIDC_PROVIDERS:
    AUTHENTICATION_BACKENDS.append("console.oidc.ProviderBackend")

# mozilla-django-oidc's own settings: those that do not differ per provider (console/oidc.py supplies the rest).
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider's logout
OIDC_TIMEOUT = envint("OIDC_TIMEOUT_SECONDS", 10, minimum=1)
OIDC_CALLBACK_CLASS = "console.oidc.CallbackView"
OIDC_AUTHENTICATE_CLASS = "console.oidc.AuthenticateView"
LOGIN_REDIRECT_URL_FAILURE = "sign_in_refused"
# A login page's provider button and the logout redirect to the provider: form-action must allow its origin
# (Chromium applies form-action to the redirect after a form post too).
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] = [SELF, *_identity.provider_origins(SSO_OIDC_PROVIDERS)]

# Sessions (with the OIDC state, nonce and PKCE verifier kept in them) live in PostgreSQL, or PostgreSQL behind a
# Redis cache: any web process answers any request, no sticky sessions. "cached_db", not "cache": revalidation
# finds and ends a user's sessions through the database.
SESSION_STORE = envchoice("SESSION_STORE", "db", ("db", "redis"))
if SESSION_STORE == "redis":
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{NAMESPACE}:cache",
        }
    }
# --- end of sign-in ---
