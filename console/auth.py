"""Authentication for pages, the JSON API and machine clients.

Pages: anonymous → redirect to login. API (/api/...): `Authorization: Bearer <token>` or the browser session;
anonymous → 401 JSON. A session-authenticated API write must carry a CSRF token (a bearer token needs none, since a
browser never sends it on its own).
"""

import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from console.access import has_role
from console.inputs import clip, loads

log = logging.getLogger(__name__)

TOO_BIG = f"the request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes a request may carry"

# Reachable without logging in: the login page itself, the identity providers' sign-in addresses, liveness for load
# balancers, static files.
PUBLIC_PREFIXES = ("/login/", "/oidc/", "/healthz", "/static/")


class ApiError(Exception):
    """Raised by API views (and helpers they call) to answer with a JSON error."""

    def __init__(self, status: int, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}

    @classmethod
    def invalid(cls, form, message: str = "invalid request") -> "ApiError":
        """The one way a form's errors reach an API client: a 400 naming each field (pages show the same errors
        beside the fields)."""
        return cls(400, message, {name: list(errors) for name, errors in form.errors.items()})

    def response(self) -> JsonResponse:
        # Messages may quote what the client sent (a too-long value, a bad choice): never more than a short prefix.
        body = {"error": clip(self.message)}
        if self.fields:
            body["fields"] = {clip(name): [clip(m) for m in messages] for name, messages in self.fields.items()}
        return JsonResponse(body, status=self.status)


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/metrics")


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


class ApiTokenMiddleware:
    """Authenticates `Authorization: Bearer` on API paths. A bad token is a 401, never a fallback to the session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.auth_via = "session" if request.user.is_authenticated else None
        token = _bearer(request) if is_api(request) else None
        if token is not None:
            from console.models import ApiToken

            row = (
                ApiToken.objects.select_related("user")
                .filter(token_hash=ApiToken.hash(token), revoked_at__isnull=True, user__is_active=True)
                .first()
            )
            if row is None:
                return JsonResponse({"error": "invalid or revoked API token"}, status=401)
            now = timezone.now()
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
            request.user = row.user
            request.auth_via = "token"
        return self.get_response(request)


class LoginRequiredMiddleware:
    """Every page, API and WebSocket needs a login; see PUBLIC_PREFIXES for the few exceptions."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(PUBLIC_PREFIXES):
            if is_api(request):
                return JsonResponse({"error": "authentication required"}, status=401)
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)


def _csrf_failure(request: HttpRequest) -> JsonResponse | None:
    """Run Django's CSRF check by hand for a session-authenticated API write."""
    check = CsrfViewMiddleware(lambda r: None)
    check.process_request(request)
    response = check.process_view(request, None, (), {})
    if response is not None:
        return JsonResponse({"error": "CSRF check failed: send the X-CSRFToken header"}, status=403)
    return None


def api(methods: tuple[str, ...] = ("GET",), role: str = "viewer") -> Callable:
    """Decorator for JSON API views: method check, role check, CSRF for session writes, JSON errors always."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return JsonResponse(
                    {"error": f"method {request.method} not allowed; use {', '.join(methods)}"}, status=405
                )
            if not has_role(request.user, role):
                return JsonResponse({"error": f"the {role} role is required"}, status=403)
            if request.method not in ("GET", "HEAD", "OPTIONS") and request.auth_via == "session":
                failure = _csrf_failure(request)
                if failure is not None:
                    return failure
            try:
                return view(request, *args, **kwargs)
            except ApiError as e:
                return e.response()
            except PermissionDenied as e:
                return JsonResponse({"error": str(e) or "permission denied"}, status=403)
            except Http404 as e:  # get_object_or_404 in a view: the client named something that is not there
                return JsonResponse({"error": clip(str(e) or "not found")}, status=404)
            except RequestDataTooBig:
                return JsonResponse({"error": TOO_BIG}, status=413)
            except SuspiciousOperation as e:  # too many fields, a malformed multipart body, …
                return JsonResponse({"error": clip(f"bad request: {e}")}, status=400)
            except Exception as e:
                from console.actions import Conflict  # here: console.actions imports models, this module must not

                if isinstance(e, Conflict):  # one an endpoint did not catch itself: still the client's 409
                    return JsonResponse({"error": str(e)}, status=409)
                log.exception("API error on %s", request.path)
                return JsonResponse({"error": "internal error; see the server log"}, status=500)

        wrapper.csrf_exempt = True  # CSRF is checked above, only where a session (not a token) authenticates
        wrapper.api_role = role
        wrapper.api_methods = methods
        return wrapper

    return decorator


def json_body(request: HttpRequest) -> dict | list:
    """The body parsed as JSON; a 400 with a short message for anything that does not parse, too-deep nesting
    included (console.inputs.loads)."""
    if not request.body:
        return {}
    try:
        return loads(request.body)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError and JsonTooDeep are all ValueErrors
        raise ApiError(400, f"the request body is not valid JSON: {e}") from e


def json_object(request: HttpRequest) -> dict:
    """The body as a JSON object; a 400 with a message for anything else."""
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def require_role(role: str) -> Callable:
    """Decorator for pages and form posts: 403 unless the user holds `role`."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"the {role} role is required")
            return view(request, *args, **kwargs)

        wrapper.required_role = role
        return wrapper

    return decorator
