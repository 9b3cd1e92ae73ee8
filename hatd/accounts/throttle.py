"""The limits on password checks: one LoginThrottle per HAT process owns every rate-limit bucket a
login draws from and the bcrypt lanes it checks on (hatd/accounts/login.py runs a login through it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from hatd.accounts import passwords
from hatd.errors import TooManyRequests
from hatd.ratelimit import RateLimiter, retry_after
from hatd.settings import Settings

# Failed logins also cost the account a token, from a bucket this many times larger and faster, so
# that guessing one account from many addresses is slowed, yet one client can never lock it out.
ACCOUNT_FACTOR = 5


class Bucket(NamedTuple):
    limiter: RateLimiter
    key: str
    # True: only failures count (a success gives its token back); False: every attempt counts.
    failures_only: bool


def _refuse(wait: float, cause: str, message: str | None) -> TooManyRequests:
    seconds = retry_after(wait)
    return TooManyRequests(cause.format(seconds=seconds), message=message, headers={"Retry-After": seconds})


class LoginThrottle:
    """Every password check of the HAT, with its limits. Each attempt costs its client a token;
    a failed one also costs the account one (ACCOUNT_FACTOR times more of them); on the owner's
    pages, failures also cost the client from the pages' own, smaller bucket. A client the owner
    has logged in from before (a device, devices.py) draws from its own bucket alone, and checks on
    the trusted lane, so strangers cannot keep the owner out."""

    def __init__(self, settings: Settings) -> None:
        burst, refill = settings.login_burst, settings.login_refill_seconds
        self.rounds = settings.bcrypt_rounds
        self.clients = RateLimiter(burst=burst, refill_seconds=refill)
        self.accounts = RateLimiter(burst=burst * ACCOUNT_FACTOR, refill_seconds=refill / ACCOUNT_FACTOR)
        self.page = RateLimiter(burst=settings.page_login_burst, refill_seconds=settings.page_login_refill_seconds)
        self.devices = RateLimiter(burst=burst, refill_seconds=refill)
        self.lanes = passwords.Lanes.create()

    def close(self) -> None:
        self.lanes.close()

    def refuse_early(self, client: str, *, page: bool, cause: str, message: str | None = None) -> None:
        """TooManyRequests now if the client (an address) is over its limit: a client over its
        limit costs no database query. Not for a request that may prove a device."""
        wait = (self.page if page else self.clients).wait(f"client:{client}")
        if wait:
            raise _refuse(wait, cause, message)

    def _buckets(
        self, client: str, account: Mapping[str, Any] | None, name: str, device: str | None, page: bool
    ) -> list[Bucket]:
        if device is not None:  # every attempt of a device counts, so a stolen cookie gains nothing
            return [Bucket(self.devices, f"device:{device}", False)]
        # Failures count against the account whichever of its names was used (email or name).
        failure_key = f"user:{account['user_id']}" if account else f"name:{name.lower()}"
        buckets = [Bucket(self.page, f"client:{client}", True)] if page else []
        return [*buckets, Bucket(self.clients, f"client:{client}", False), Bucket(self.accounts, failure_key, True)]

    async def check(
        self,
        client: str,
        account: Mapping[str, Any] | None,
        password: str,
        *,
        name: str,
        device: str | None,
        page: bool,
        cause: str,
        message: str | None = None,
    ) -> bool:
        """Whether `password` is the account's (None: no such account, asked for as `name`), from
        `client` (an address), or from the owner's `device`. Each bucket gives a token before
        bcrypt runs, so guesses sent at once cannot all slip through; TooManyRequests (cause
        formatted with {seconds}) when one is empty or the lane is full, taking nothing then."""
        taken: list[Bucket] = []
        for bucket in self._buckets(client, account, name, device, page):
            wait = bucket.limiter.take(bucket.key)
            if wait:
                for back in taken:
                    back.limiter.give_back(back.key)
                raise _refuse(wait, cause, message)
            taken.append(bucket)
        lane = self.lanes.trusted if device is not None else self.lanes.shared
        hashed = account["pass_hash"] if account else None
        try:
            matched = await passwords.check_password(password, hashed, self.rounds, lane, holder=device)
        except passwords.Busy:
            for bucket in taken:
                bucket.limiter.give_back(bucket.key)
            raise _refuse(1, cause, message) from None
        if matched:
            for bucket in taken:
                if bucket.failures_only:
                    bucket.limiter.give_back(bucket.key)
        return matched
