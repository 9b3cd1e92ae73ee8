"""JSON bodies put together from the pieces PostgreSQL builds, without decoding any of them, so a
large read is written as it is produced: a JSON array from chunks of its items, and an envelope
(an object PostgreSQL built with a marker where each list goes) filled piece by piece.

The bytes are those `json_agg` would have given for the whole: items separated by ", "."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from json.encoder import encode_basestring

# Records (or entities) per query while streaming a read: enough to keep round trips few, few
# enough that a reader holds well under a megabyte at a time.
CHUNK = 200

Chunk = Callable[[Sequence[int]], Awaitable[str | None]]


async def array(ids: Sequence[int], chunk: Chunk, size: int = CHUNK) -> AsyncIterator[str]:
    """A JSON array of the items of `ids`, in order: `chunk` gives those of a slice of them
    (already joined by ", ", or None when none of them exists any more)."""
    yield "["
    first = True
    for start in range(0, len(ids), size):
        text = await chunk(ids[start : start + size])
        if text:
            yield text if first else ", " + text
            first = False
    yield "]"


def marker() -> str:
    """A string no name in the HAT can hold by chance, to mark where a list goes in an envelope."""
    return "hatd-" + secrets.token_hex(16)


def split_envelope(text: str, mark: str) -> list[str | int]:
    """An envelope's text cut at each `"<mark>:<n>"`: [text, n, text, n, ..., text]."""
    parts = re.split(f'"{re.escape(mark)}:(\\d+)"', text)
    return [int(part) if i % 2 else part for i, part in enumerate(parts)]


async def joined(parts: AsyncIterator[str]) -> str:
    """The whole text of a streamed body (for the callers that want it at once)."""
    return "".join([part async for part in parts])


# The spacing of PostgreSQL's json_build_object and json_agg, which build most response bodies
# (tables, records, values, accounts): bodies Python builds (errors, tokens, acknowledgements) are
# written the same way, so that every route answers alike (`{"id" : 1, "name" : "x"}`).
JSON_SEPARATORS = (", ", " : ")


def dumps(data: object) -> str:
    """A response body as JSON text, spaced as PostgreSQL spaces the bodies it builds."""
    return json.dumps(data, separators=JSON_SEPARATORS)


# A text as a JSON string (quotes included), escaped as PostgreSQL's json functions escape it: the
# quote, the backslash, \b \f \n \r \t, other control characters as \u00xx, everything else as it
# is. It is the encoder behind json.dumps(ensure_ascii=False).
string: Callable[[str], str] = encode_basestring


def hat_time(t: dt.datetime) -> str:
    """A time as the database function hat_time writes it (sql/functions/raw.sql): UTC, to the
    millisecond, cut rather than rounded, as PostgreSQL's to_char does (`2015-11-22T21:24:44.123Z`)."""
    t = t.astimezone(dt.UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )
