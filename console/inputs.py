"""Hostile input at the edge: JSON nested past what Python's parser can follow, NUL characters in a query string, and
error answers that would echo a whole offending value back.

Each was a 500 (or a 300 KB error answer) in a first hostile-input run (issue 14)."""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse

# An error answer shows at most this much of an offending value, and says how long the value was.
SHOWN_CHARS = 200


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it was: an error answer must never echo a 300 KB input."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters in all)"


class JsonTooDeep(ValueError):
    pass


def loads(data: str | bytes):
    """json.loads, with nesting too deep for Python's parser (`[[[[…`: RecursionError, past about 1,000 levels)
    raised as a ValueError like any other parse error, so every caller's `except ValueError` answers it."""
    try:
        return json.loads(data)
    except RecursionError:
        raise JsonTooDeep("it nests arrays or objects too deeply") from None


def has_nul(request: HttpRequest) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())


class RejectNulQueryMiddleware:
    """A NUL character in a query string is a 400 on every page and API: PostgreSQL cannot store or compare it in a
    text column, so a filter or search that passed one on answered with DataError (a 500). Checked once here rather
    than in each filter: a new search box is covered too. Form fields (Django's CharField) refuse NUL themselves."""

    MESSAGE = "the query string holds a NUL character (%00), which no filter or search accepts"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:  # a URL segment (`/sagas/%00/`) reaches the same text columns
            return _bad_request(request, "the URL holds a NUL character (%00), which no name or id contains")
        if "\x00" in request.META.get("QUERY_STRING", "") or has_nul(request):
            if request.path.startswith(("/api/", "/metrics")):
                return JsonResponse({"error": self.MESSAGE}, status=400)
            return HttpResponse(f"Bad request: {self.MESSAGE}.", status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith(("/api/", "/metrics")):
        return JsonResponse({"error": message}, status=400)
    return HttpResponse(f"Bad request: {message}.", status=400, content_type="text/plain; charset=utf-8")


# What an error answer with no body of its own says (Django's require_POST answers 405 with nothing).
EXPLANATIONS = {
    400: "the request is malformed",
    403: "permission denied",
    404: "not found",
    405: "method {method} is not allowed here; use {allow}",
    413: "the request body is too large",
}


class ExplainEmptyErrorsMiddleware:
    """A 4xx with an empty body says why in a short sentence (JSON on the API), so every refusal is a clear one: a
    405 from `require_POST` and a bare 404 otherwise answer with nothing but the status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if 400 <= response.status_code < 500 and not getattr(response, "streaming", False) and not response.content:
            template = EXPLANATIONS.get(response.status_code, "the request was refused")
            message = template.format(method=request.method, allow=response.get("Allow", "another method"))
            if request.path.startswith(("/api/", "/metrics")):
                response.content = json.dumps({"error": message}).encode()
                response["Content-Type"] = "application/json"
            else:
                response.content = f"{message[0].upper()}{message[1:]}.".encode()
                response["Content-Type"] = "text/plain; charset=utf-8"
        return response
