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
        if "\x00" in request.META.get("QUERY_STRING", "") or has_nul(request):
            if request.path.startswith(("/api/", "/metrics")):
                return JsonResponse({"error": self.MESSAGE}, status=400)
            return HttpResponse(f"Bad request: {self.MESSAGE}.", status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
