"""The errors hatd answers with. Every 4xx and 5xx body is {"message": ..., "cause": ...}.

Repositories raise NotFound, Conflict, Forbidden and BadRequest as domain errors; the error
middleware turns any ApiError into its response."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(Exception):
    """An error with a status, a short fixed message and a cause that says what went wrong."""

    status = 500
    message = "Internal server error"

    def __init__(self, cause: str, *, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        if message is not None:
            self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400
    message = "Bad request"


class Unauthorized(ApiError):
    status = 401
    message = "The supplied authentication is invalid"


class Forbidden(ApiError):
    status = 403
    message = "Forbidden"


class NotFound(ApiError):
    status = 404
    message = "Not found"


class NotAcceptable(ApiError):
    status = 406
    message = "Not acceptable"


class Conflict(ApiError):
    status = 409
    message = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    message = "Request body too large"


class TooManyRequests(ApiError):
    status = 429
    message = "Too many requests"


# The spacing of PostgreSQL's json_build_object and json_agg, which build most response bodies
# (tables, records, values, accounts): bodies Python builds (errors, tokens, acknowledgements) are
# written the same way, so that every route answers alike (`{"id" : 1, "name" : "x"}`).
JSON_SEPARATORS = (", ", " : ")


def dumps(data: object) -> str:
    """A response body as JSON text, spaced as PostgreSQL spaces the bodies it builds."""
    return json.dumps(data, separators=JSON_SEPARATORS)


def error_response(status: int, message: str, cause: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=dumps({"message": message, "cause": cause}),
        content_type="application/json",
        headers=headers,
    )
