"""Data checked against a marshmallow schema, whoever asks (a view parsing a request, a repository
reading a part of one): bad data is a BadRequest naming each field and what is wrong with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow

from hatd.errors import BadRequest


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict -> ["field.sub: message", ...]."""
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            # "_schema": the object itself is wrong; name it by its own name (the body at the top).
            if key == "_schema":
                out += _flatten(value, prefix or "body")
            else:
                out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for item in messages for line in _flatten(item, prefix)]
    return [f"{prefix}: {messages}"]


def validation_cause(error: marshmallow.ValidationError) -> str:
    return "; ".join(_flatten(error.messages))


def load(schema: type[marshmallow.Schema], data: Any, *, many: bool = False) -> Any:
    try:
        return schema().load(data, many=many)
    except marshmallow.ValidationError as exc:
        raise BadRequest(validation_cause(exc), message="Invalid request") from None
    except RecursionError:  # nested schemas (subTables) load recursively
        raise BadRequest("The body nests too deep", message="Invalid request") from None
