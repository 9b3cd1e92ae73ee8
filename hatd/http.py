"""What every view does with HTTP: parse a JSON body or a query with a marshmallow schema
(bad input -> 400 naming the field), and render JSON."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import marshmallow
import orjson
from aiohttp import web

from hatd.errors import BadRequest, NotFound
from hatd.fields import MAX_ID
from hatd.jsontext import dumps
from hatd.state import SETTINGS
from hatd.validation import load

log = logging.getLogger(__name__)

# How long a streamed answer waits for a client that reads nothing before it cuts the answer short.
STREAM_WRITE_TIMEOUT = 60.0

# A JSON \u0000 escape (not an escaped backslash followed by "u0000"): PostgreSQL text cannot hold NUL.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


# A JSON \\uD800-\\uDFFF escape: a surrogate, which is only valid in a high+low pair.
_JSON_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F][0-9a-fA-F]{2}")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(data: Any) -> bool:
    """Whether every string in the data is valid Unicode (no lone surrogates)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:  # json.loads read it a few levels from the limit, from a shallower stack
        raise BadRequest("The body nests too deep", message="Malformed JSON") from None
    return True


# A run of 19 digits or more: a number orjson may read otherwise than json does (an integer beyond
# 64 bits becomes a float there, where json keeps it whole). With every digit made a 0, one find.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def decode_json(raw: bytes) -> Any:
    """A body's JSON as json.loads reads it (NaN and Infinity refused), or the error json raises.

    orjson reads a data plug's batch three times as fast, and where it succeeds it gives what json
    gives (tests/test_http_json.py holds it to that, on valid, broken, odd and deep bodies) but for
    long integers, which go to json, and for depth: orjson reads 1,024 levels where json stops near
    1,000 (RecursionError, which the caller refuses), so a body orjson.dumps will not write back
    (over 254 levels, a check that costs a tenth of the read) goes to json too. What orjson refuses
    also goes to json, which accepts some of it (a lone surrogate, which the caller refuses in its
    own words) or names the fault as before."""
    if raw.translate(_DIGITS_TO_ZERO).find(_LONG_DIGIT_RUN) < 0:
        try:
            data = orjson.loads(raw)
            orjson.dumps(data)
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass
        else:
            return data
    return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or 400 saying what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("The request has no body; it needs a JSON one", message="Malformed JSON")
    try:
        data = decode_json(raw)
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8 text", message="Malformed JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", message="Malformed JSON"
        ) from None
    except ValueError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}", message="Malformed JSON") from None
    except RecursionError:
        raise BadRequest("The body nests too deep", message="Malformed JSON") from None
    # The substring tests first: the regexes cost a few ms on a large batch, the tests microseconds.
    if (b"\\ud" in raw or b"\\uD" in raw) and _JSON_SURROGATE.search(raw) and not _encodable(data):
        raise BadRequest(
            "The body holds a lone UTF-16 surrogate (\\uD800-\\uDFFF), which text cannot hold",
            message="Invalid request",
        )
    if b"\\u0000" in raw and _JSON_NUL.search(raw):
        raise BadRequest(
            "The body contains a NUL character (\\u0000), which text cannot hold", message="Invalid request"
        )
    return data


async def parse_body(request: web.Request, schema: type[marshmallow.Schema], *, many: bool = False) -> Any:
    return load(schema, await read_json(request), many=many)


def storable(text: str) -> bool:
    """Text PostgreSQL can hold: no NUL, valid Unicode (bytes that were not UTF-8 arrive as lone
    surrogates)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_query(request: web.Request, schema: type[marshmallow.Schema]) -> Any:
    for name, value in request.query.items():
        if not storable(value):
            raise BadRequest(f"{name}: holds a NUL or a byte that is not UTF-8", message="Invalid request")
    return load(schema, dict(request.query))


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


async def stream_json(
    request: web.Request, parts: AsyncIterator[str], *, headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """A 200 whose JSON body is written as `parts` come (chunked), so a large read never sits
    whole in memory. Whatever can fail on the request must fail before: once the status is sent,
    a failure can only cut the body short, and the connection is closed so that the client sees
    an incomplete answer rather than a complete-looking wrong one."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    response.charset = "utf-8"
    await response.prepare(request)
    if request.method != "HEAD":
        try:
            async for part in parts:
                # A client that stops reading must not hold a pooled connection (and a snapshot) open.
                await asyncio.wait_for(response.write(part.encode()), STREAM_WRITE_TIMEOUT)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except TimeoutError:
            log.warning("%s %s: the client read nothing for %.0f s; answer cut short",
                        request.method, request.rel_url.path, STREAM_WRITE_TIMEOUT)  # fmt: skip
            if request.transport is not None:
                request.transport.close()
            return response
        except Exception:
            log.exception("a streamed answer to %s %s failed after it began", request.method, request.rel_url.path)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


def json_text(text: str, *, status: int = 200) -> web.Response:
    """A response from JSON that PostgreSQL built (json_build_object, json_agg)."""
    return web.Response(text=text, status=status, content_type="application/json")


def path_id(request: web.Request, name: str, kind: str) -> int:
    """An id from the path (the route admits digits only); one too large for any row is unknown."""
    digits = request.match_info[name]
    value = int(digits) if len(digits) <= 19 else 0  # int() of thousands of digits is refused, and slow
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"There is no {kind} with id {digits if len(digits) <= 40 else digits[:40] + '...'}")
    return value


def page_limit(request: web.Request, given: int | None) -> int:
    """A read's page size: the one given, or HATD_VALUES_LIMIT; over HATD_VALUES_MAX_LIMIT is a 400.
    0 is the largest page, HATD_VALUES_MAX_LIMIT: the original ignored the limit there, and Rumpel
    asks for limit=0 meaning "all"."""
    settings = request.app[SETTINGS]
    if given == 0:
        return int(settings.values_max_limit)
    limit = given or settings.values_limit
    if limit > settings.values_max_limit:
        raise BadRequest(f"limit: at most {settings.values_max_limit}", message="Invalid request")
    return limit


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> Networks:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in an X-Forwarded-For entry or a peer address: "203.0.113.7", "203.0.113.7:5555",
    "2001:db8::1", "[2001:db8::1]:443"; an IPv4-mapped IPv6 address as its IPv4 one. None if none."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks: Networks) -> bool:
    return ip is not None and any(ip in network for network in networks)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy (HATD_TRUSTED_PROXIES),
    the last address in X-Forwarded-For that is not a trusted proxy itself (the ones before it are
    the client's own say, which anyone can forge). An entry that is no address ends the walk at the
    peer: hatd never believes what it cannot read."""
    peer = request.remote or ""
    settings = request.app.get(SETTINGS)
    networks = _networks(settings.trusted_proxies) if settings else ()
    if not networks or not _trusted(_ip(peer), networks):
        return peer
    hops = [hop for header in request.headers.getall("X-Forwarded-For", ()) for hop in header.split(",")]
    for hop in reversed([hop for hop in hops if hop.strip()]):
        ip = _ip(hop)
        if not _trusted(ip, networks):
            return str(ip) if ip is not None else peer
    return peer
