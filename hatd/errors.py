"""The errors hatd answers with. Every 4xx and 5xx body is {"message": ..., "cause": ...}.

Repositories raise NotFound, Conflict, Forbidden and BadRequest as domain errors; the error
middleware turns any ApiError into its response."""

from __future__ import annotations


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
