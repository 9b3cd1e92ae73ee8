"""The token bucket behind the login rate limit, on a clock the test moves."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hatd.http import client_address
from hatd.ratelimit import RateLimiter, retry_after
from hatd.settings import SettingsError
from hatd.state import SETTINGS
from tests.web_helpers import hidden_fields


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_of_ten_refilled_one_every_two_seconds():
    clock = Clock()
    limiter = RateLimiter(burst=10, refill_seconds=2.0, clock=clock)
    assert [limiter.take("k") for _ in range(10)] == [0.0] * 10
    assert limiter.take("k") == 2.0
    clock.now += 1.0
    assert limiter.take("k") == 1.0
    clock.now += 1.0
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == 2.0
    clock.now += 3600
    assert [limiter.take("k") for _ in range(10)] == [0.0] * 10
    assert limiter.take("k") > 0


def test_all_keys_must_have_a_token_and_a_refusal_takes_nothing():
    clock = Clock()
    limiter = RateLimiter(burst=2, refill_seconds=1.0, clock=clock)
    assert limiter.take("client", "alice") == 0
    assert limiter.take("client", "bob") == 0
    assert limiter.take("client", "carol") == 1.0
    # carol's bucket was not charged by the refusal
    assert limiter.take("other-client", "carol") == 0
    assert limiter.take("other-client", "carol") == 0


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0.01) == "1"
    assert retry_after(2.0) == "2"
    assert retry_after(2.1) == "3"


def test_idle_keys_are_forgotten_when_there_are_too_many(monkeypatch):
    import hatd.ratelimit as module

    monkeypatch.setattr(module, "MAX_KEYS", 3)
    clock = Clock()
    limiter = RateLimiter(burst=1, refill_seconds=1.0, clock=clock)
    for key in "abc":
        limiter.take(key)
    clock.now += 10
    limiter.take("d")
    assert set(limiter._buckets) == {"d"}


async def test_behind_a_trusted_proxy_each_client_has_its_own_login_bucket(make_client):
    # The test client connects from 127.0.0.1: here it plays the proxy.
    client = await make_client(login_burst=2, login_refill_seconds=1000, trusted_proxies="127.0.0.1")

    async def attempt(forwarded: str) -> int:
        headers = {"username": "nobody@hat.test", "password": "x", "X-Forwarded-For": forwarded}
        return (await client.get("/users/access_token", headers=headers)).status

    assert [await attempt("203.0.113.7") for _ in range(3)] == [401, 401, 429]
    assert await attempt("203.0.113.8") == 401  # another client behind the same proxy
    # What the client itself put in front is its own say: the proxy's last hop decides.
    assert await attempt("198.51.100.1, 203.0.113.7") == 429


async def test_an_untrusted_peer_cannot_choose_its_address(make_client):
    client = await make_client(login_burst=2, login_refill_seconds=1000)  # no trusted proxies

    async def attempt(forwarded: str) -> int:
        headers = {"username": "nobody@hat.test", "password": "x", "X-Forwarded-For": forwarded}
        return (await client.get("/users/access_token", headers=headers)).status

    assert [await attempt(f"203.0.113.{i}") for i in range(3)] == [401, 401, 429]


def test_trusted_proxies_must_be_addresses_or_networks(settings):
    with pytest.raises(SettingsError, match=r"trusted_proxies: 'proxy\.example' is not an IP address or network"):
        settings.replace(trusted_proxies="10.0.0.0/8,proxy.example")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.5", "203.0.113.7", "203.0.113.7"),
        ("10.0.0.5", "203.0.113.7:5555", "203.0.113.7"),  # some proxies add the port
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.5", "2001:db8::1", "2001:db8::1"),
        ("10.0.0.5", "203.0.113.7, ", "203.0.113.7"),  # an empty entry is skipped
        ("10.0.0.5", "203.0.113.7, 10.0.0.9", "203.0.113.7"),  # a second trusted proxy
        ("10.0.0.5", "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # what the client sent first is its own say
        ("10.0.0.5", "unknown", "10.0.0.5"),  # not an address: the peer
        ("::ffff:10.0.0.5", "203.0.113.7", "203.0.113.7"),  # an IPv4-mapped peer is its IPv4 address
        ("192.0.2.1", "203.0.113.7", "192.0.2.1"),  # not a trusted proxy: the header is ignored
        ("10.0.0.5", "", "10.0.0.5"),
    ],
)
def test_the_client_address_behind_trusted_proxies(settings, peer, forwarded, client):
    app = web.Application()
    app[SETTINGS] = settings.replace(trusted_proxies="10.0.0.0/8")
    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": forwarded}, app=app).clone(remote=peer)
    assert client_address(request) == client


async def test_the_login_page_limits_each_client_behind_a_trusted_proxy(make_client):
    client = await make_client(trusted_proxies="127.0.0.1", page_login_burst=2, page_login_refill_seconds=1000)

    async def attempt(forwarded: str) -> int:
        form = hidden_fields(await (await client.get("/owner/login")).text())
        response = await client.post("/owner/login", data={**form, "password": "guess"},
                                     headers={"X-Forwarded-For": forwarded})  # fmt: skip
        return response.status

    assert [await attempt("203.0.113.7") for _ in range(3)] == [401, 401, 429]
    assert await attempt("203.0.113.8") == 401
