"""OpenAI-shaped errors (``{"error": {"message", "type", "param", "code"}}``) and the guard in front of every route:
the API key (constant-time comparison) and the request-body cap. Nothing here ever answers with a traceback."""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.errors import TuneforgeError

log = logging.getLogger("tuneforge.api")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
         500: "server_error", 503: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def response(status: int, message: str, param: str | None = None, code: str | None = None, headers=None):
    return JSONResponse(body(status, message, param, code), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str | None]:
    errs = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errs):
        return 400, "the request body is not valid JSON; send a JSON object (Content-Type: application/json)", None
    parts, first = [], None
    for e in errs[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        # pydantic tries each member of a union: keep the location a person would read
        where = ".".join(x for x in loc if not x[:1].isupper() and "[" not in x) or "body"
        first = first or where
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field (not part of the OpenAI API as tuneforge serves it); remove it"
        parts.append(f"{where}: {msg}")
    return 422, "invalid request: " + "; ".join(dict.fromkeys(parts)), first


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return response(exc.status, exc.message, exc.param, exc.code)

    @app.exception_handler(TuneforgeError)
    async def _tf(request: Request, exc: TuneforgeError):
        from tuneforge.errors import error_text

        return response(400, error_text(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        status, msg, param = _validation_message(exc)
        return response(status, msg, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            msg = (f"no route {request.method} {request.url.path}; routes: GET /v1/models, POST /v1/chat/completions,"
                   " POST /v1/completions, POST /v1/score")
        elif exc.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path}"
        else:
            msg = str(exc.detail)
        code = "request_too_large" if exc.status_code == 413 else None
        return response(exc.status_code, msg, code=code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):  # a bug of ours: logged here, never sent to the client
        log.exception("request %s %s failed", request.method, request.url.path)
        return response(500, f"the server failed on this request ({type(exc).__name__}); the server log has the "
                             "details and the server keeps running", code="internal_error")


class Guard:
    """ASGI middleware: the API key on every route (when set) and the request-body cap (Content-Length, and the
    bytes actually received for chunked bodies)."""

    def __init__(self, app, api_key: str | None, max_bytes: int):
        self.app, self.key, self.max_bytes = app, (api_key.encode() if api_key else None), max_bytes

    async def _send_json(self, send, status: int, payload: dict, headers=()):
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": data})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.key is not None:
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                return await self._send_json(send, 401, body(
                    401, "missing or wrong API key: send the header `Authorization: Bearer KEY` with the key the "
                         "server was started with (--api_key)", code="invalid_api_key"),
                    [(b"www-authenticate", b"Bearer")])
        limit = self.max_bytes
        too_big = body(413, f"the request body is larger than the server's limit of {limit} bytes; send less "
                            "(or start the server with a larger --max_request_bytes)", code="request_too_large")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._send_json(send, 413, too_big)
        received = 0

        async def limited():
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, too_big["error"]["message"])
            return msg

        await self.app(scope, limited, send)
