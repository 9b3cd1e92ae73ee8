"""Request bodies are read by orjson where it reads them as json does, and by json otherwise: on
valid, broken and odd bodies, and thousands of mutations of them, decode_json gives exactly what
json.loads gave (the value, its types, or the same kind of error)."""

from __future__ import annotations

import json
import math
import random
import sys
from typing import Any

import pytest

from hatd.http import _no_constants, decode_json
from tests.conftest import auth
from tests.raw_helpers import NEST, fields_by_name, new_table

SEEDS = [
    b'[{"record": {"name": "a", "lastUpdated": 1.5}, "values": [{"value": "x", "field": {"id": 1}}]}]',
    b'{"a": 1, "a": 2, "b": {"a": [true, false, null]}}',
    b"[1.5, -0, -0.0, 1e400, -1E400, 1E-400, 0.1, 1.7976931348623157e308, 5e-324, 1.0e+00, 0e0, -0e-0]",
    b"[9223372036854775807, 9223372036854775808, -9223372036854775808, -9223372036854775809]",
    b"[18446744073709551615, 18446744073709551616, 123456789012345678901234567890, 1234567890123456789.5]",
    b'"\\ud83d\\ude00 \\ud800 \\udc00\\ud800 \\u00e9 \\/ \\b\\f\\n\\r\\t \\"\\\\"',
    b'"\\u0000"',
    b"NaN",
    b"[Infinity, -Infinity]",
    b"\xef\xbb\xbf[1]",
    b"[1,]",
    b'{"a":1,}',
    b"[01]",
    b'"a\x01b"',
    b'"a\nb"',
    b"  [1]  ",
    b"[1]\x00",
    b"\t[1]\r\n",
    b"\x0c[1]",
    b"[1] x",
    b"[] []",
    b'"\xff"',
    b'"\xed\xa0\x80"',
    b'"\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80"',
    b"[" * 2000 + b"]" * 2000,
    b"[" * 300 + b"]" * 300,
    b'{"\\u00e9": "\\/"}',
    b"[tru]",
    b"-",
    b"1.",
    b".5",
    b"1e",
    b"+1",
    b'"\\x41"',
    b'"\\u12"',
    b'{"a" : [ {"b":"c" } ] }',
]
MUTATIONS = b' []{}":,0123456789.-+eEtrufalsn\\u\x00\x01\x1f\x7f\xc3\xa9\xff\xed\xa0"abc'


def _outcome(read: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", read(raw)
    except RecursionError:
        return "error", RecursionError
    except UnicodeDecodeError:
        return "error", UnicodeDecodeError
    except ValueError:  # json.JSONDecodeError, and _no_constants's refusal of NaN and Infinity
        return "error", ValueError


def _json(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, -0.0 is not 0.0), keys in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _mutants(count: int) -> list[bytes]:
    rng = random.Random(20261207)  # noqa: S311 (a repeatable choice of test bodies)
    bodies = []
    for _ in range(count):
        raw = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(0, 4)):
            at = rng.randint(0, len(raw))
            change = rng.randint(0, 2)
            if change == 0:
                raw[at:at] = bytes([rng.choice(MUTATIONS)])
            elif raw:
                at = min(at, len(raw) - 1)
                if change == 1:
                    del raw[at]
                else:
                    raw[at] = rng.choice(MUTATIONS)
        bodies.append(bytes(raw))
    return bodies


def _numbers(count: int) -> list[bytes]:
    rng = random.Random(7)  # noqa: S311 (a repeatable choice of test bodies)
    bodies = []
    for _ in range(count):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25))).lstrip("0") or "0"
        text = rng.choice(["", "-"]) + digits
        if rng.random() < 0.7:
            text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        if rng.random() < 0.5:
            text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
        bodies.append(f"[{text}]".encode())
    return bodies


@pytest.mark.parametrize("kind", ["seeds", "mutants", "numbers"])
def test_bodies_decode_as_json_decodes_them(kind: str) -> None:
    bodies = {"seeds": SEEDS, "mutants": _mutants(30_000), "numbers": _numbers(30_000)}[kind]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # _same walks the deep seeds
    try:
        for raw in bodies:
            expected, got = _outcome(_json, raw), _outcome(decode_json, raw)
            assert expected[0] == got[0] and (
                expected[1] is got[1] if expected[0] == "error" else _same(expected[1], got[1])
            ), raw[:200]
    finally:
        sys.setrecursionlimit(limit)


def test_long_integers_stay_whole() -> None:
    assert decode_json(b"[-9223372036854775809, 123456789012345678901234567890]") == [
        -9223372036854775809,
        123456789012345678901234567890,
    ]


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize("depth", [254, 255, 900, 1000, 1010, 1024, 1025])
def test_deep_bodies_decode_as_json_decodes_them(depth: int) -> None:
    """orjson reads 1,024 levels, json about 1,000: between the two, json decides."""
    raw = _nested(depth)
    expected, got = _outcome(_json, raw), _outcome(decode_json, raw)
    assert expected[0] == got[0] and (expected[1] is got[1] if expected[0] == "error" else expected[1] == got[1])


def _batch_with(field: int, extra: bytes) -> bytes:
    """A one-record batch with a key the route ignores, holding `extra`."""
    head = json.dumps({"record": {"name": "r"}, "values": [{"value": "v", "field": {"id": field}}]})
    return b"[" + head[:-1].encode() + b', "x": ' + extra + b"}]"


@pytest.mark.parametrize("inner", [b"1", b'"\\ud83d\\ude00"'])
@pytest.mark.parametrize("depth", [985, 1000, 1020])
async def test_a_batch_nested_near_the_limit_is_stored_or_refused_never_500(client, owner_token, depth, inner):
    """A body nested about as deep as json reads, with a surrogate pair that sends it through the
    surrogate check (which writes the data again, from a deeper stack): 201 or 400, never 500,
    and at a depth json refuses, refused."""
    table = await new_table(client, owner_token, NEST)
    field = fields_by_name(table)["temperature"]
    response = await client.post(
        "/data/record/values", data=_batch_with(field, _nested(depth, inner)), headers=auth(owner_token)
    )
    assert response.status in (201, 400), await response.text()
    if depth >= 1000:
        assert response.status == 400
        assert (await response.json())["cause"] == "The body nests too deep"
