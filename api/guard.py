"""What stands between a hostile client and the application: body size, failed logins, headers, errors.

* :class:`BodyLimit`: a request body over ``max_bytes`` is ``413``: at once when its
  ``Content-Length`` says so (nothing is read), else as soon as the chunks read add up to more.
* :class:`AuthFailures`: failed authentications per client address in a sliding window; over
  the limit, every authenticated request of that address is ``429`` with ``Retry-After``.
* :class:`SecurityHeaders`: ``nosniff``, ``DENY`` framing (and CSP ``frame-ancestors 'none'``)
  on every response, ``Cache-Control: no-store`` on every answer to a request with credentials.
* :func:`validation_error`: a ``422`` that names the field and the rule but never echoes the
  input (which may be huge, or not serialisable: a lone surrogate, ``NaN``, ``1e309``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request

from crmkit.api.policy import TooManyAttempts

DEFAULT_MAX_BODY = 1_048_576
DEFAULT_AUTH_FAILURES = 20
DEFAULT_AUTH_WINDOW_S = 60.0
#: longest message, and longest location part, an error body carries (characters)
MAX_MESSAGE = 300
MAX_LOC = 64
MAX_ERRORS = 20


def safe_text(value: object, limit: int = MAX_MESSAGE) -> str:
    """``value`` as text that always serialises to UTF-8 JSON and is at most ``limit`` characters."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _loc_part(part: object) -> str | int:
    return part if isinstance(part, int) and not isinstance(part, bool) else safe_text(part, MAX_LOC)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's ``{"detail": [{"loc", "msg", "type"}]}`` without the input: bounded and always serialisable."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [
        {
            "loc": [_loc_part(p) for p in err.get("loc", ())][:10],
            "msg": safe_text(err.get("msg", "invalid")),
            "type": safe_text(err.get("type", "value_error"), MAX_LOC),
        }
        for err in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        detail.append(
            {"loc": ["body"], "msg": f"and {len(errors) - MAX_ERRORS} more errors", "type": "too_many_errors"}
        )
    return JSONResponse({"detail": detail}, 422)


class BodyTooLarge(HTTPException):
    """The request body is over the limit (FastAPI passes an HTTPException from reading the body through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class BodyLimit:
    """Pure ASGI middleware: refuse request bodies over ``max_bytes`` with ``413``."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = JSONResponse(
                {"detail": BodyTooLarge(self.max_bytes).detail}, 413, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


_FRAME_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Pure ASGI middleware: the headers of :data:`_FRAME_HEADERS` on every response; ``no-store``
    on the answer to every request that carries credentials (an ``Authorization`` header)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentials = any(name == b"authorization" for name, _ in scope.get("headers", ()))

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if not (credentials and h[0] == b"cache-control")]
                headers += _FRAME_HEADERS
                if credentials:
                    headers.append(_NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class AuthFailures:
    """Failed authentications per client address within ``window_s`` seconds (one process's count).

    :meth:`check` raises :class:`TooManyAttempts` while an address has ``limit`` failures in the
    window; :meth:`fail` records one.  Memory is bounded: at most ``max_clients`` addresses are kept.
    """

    def __init__(
        self, limit: int = DEFAULT_AUTH_FAILURES, window_s: float = DEFAULT_AUTH_WINDOW_S, max_clients: int = 10_000
    ) -> None:
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        times = self._failures.get(client)
        if not times:
            return
        now = time.monotonic()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
        elif len(times) >= self.limit:
            retry = max(1, math.ceil(times[0] + self.window_s - now))
            raise TooManyAttempts(
                f"too many failed authentications from {client}: try again in {retry} s", retry_after=retry
            )

    def fail(self, client: str) -> None:
        times = self._failures.get(client)
        if times is None:
            if len(self._failures) >= self.max_clients:
                self._failures.clear()  # a flood of addresses: forget them all rather than grow
            times = self._failures[client] = deque(maxlen=self.limit)
        times.append(time.monotonic())
