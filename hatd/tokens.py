"""RS256 access tokens: the HAT's key pair, issuing tokens and checking the ones presented.

Checking a token here covers what the token itself proves (signature, algorithm, key id,
issuer, resource, expiry, claims); whether its account still exists and is enabled is the auth
middleware's question, asked on every request (of memory kept true by the database's
notifications, hatd/callers.py, or of the database)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from hatd.errors import Unauthorized

ALGORITHM = "RS256"
VALIDATE_SCOPE = "validate"
# Clock difference tolerated between the HAT and whoever made the token's time claims.
LEEWAY_SECONDS = 30
# Tokens whose checks are remembered (see TokenService.check), the least recently used forgotten first.
CHECKED_TOKENS = 4096


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_pem: str = field(repr=False)
    public_pem: str


def generate_key_pair() -> KeyPair:
    """A new RSA-2048 key pair; its id is the RFC 7638 thumbprint of the public key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(kid=_thumbprint(private.public_key()), private_pem=private_pem, public_pem=public_pem)


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _thumbprint(public: rsa.RSAPublicKey) -> str:
    numbers = public.public_numbers()
    canonical = json.dumps({"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class Claims:
    user_id: str
    role: str
    resource: str
    jti: str
    expires: int
    # The approval an approved service got this token under (see hatd/services), if any.
    approval: str | None = None


@functools.lru_cache(maxsize=16)
def _private_key(pem: str) -> PrivateKeyTypes:
    """A PEM private key, loaded once per process: loading checks the RSA key, which takes about a
    tenth of a second, and every app of one HAT (the tests build hundreds) holds the same key."""
    return serialization.load_pem_private_key(pem.encode(), password=None)


class TokenService:
    """Signs and checks this HAT's tokens with one key pair."""

    def __init__(self, keys: KeyPair, *, issuer: str, ttl: int, former_issuers: tuple[str, ...] = ()) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl
        # Other names this HAT signed its tokens with (its address with the scheme, before hatd
        # signed the bare host as the original did): tokens with them stay good until they expire.
        self.accepted_issuers = frozenset({issuer, *former_issuers})
        self._private = _private_key(keys.private_pem)
        self._public = serialization.load_pem_public_key(keys.public_pem.encode())
        self._checked: OrderedDict[str, Claims] = OrderedDict()

    def issue(
        self,
        user_id: str,
        role: str,
        *,
        resource: str | None = None,
        ttl: int | None = None,
        approval: str | None = None,
    ) -> str:
        """A signed token for an account. API tokens have resource = the HAT itself. `approval`:
        the approved service it is given to, so that revoking the approval ends it."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "resource": resource or self.issuer,
            "accessScope": role,
            "iat": now,
            "exp": now + (ttl or self.ttl),
            "jti": str(uuid.uuid4()),
        }
        if approval is not None:
            claims["approval"] = approval
        return jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": self.keys.kid})  # type: ignore[arg-type]

    def check(self, token: str) -> Claims:
        """The claims of a token valid for this HAT's API, or Unauthorized saying why not.

        A token that passed is remembered (the exact text, CHECKED_TOKENS of them): its
        signature, header and claims will pass again, being the same bytes checked against the
        same key and issuer, so only its expiry is checked again. That check (pyjwt decodes and
        verifies the RSA signature) costs more than the rest of a request to validate."""
        claims = self._checked.get(token)
        if claims is not None:
            if claims.expires <= time.time() - LEEWAY_SECONDS:  # as pyjwt decides it
                del self._checked[token]
                raise Unauthorized("The token has expired")
            self._checked.move_to_end(token)
            return claims
        claims = self._check(token)
        self._checked[token] = claims
        if len(self._checked) > CHECKED_TOKENS:
            self._checked.popitem(last=False)
        return claims

    def _check(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("The token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(f"Tokens must be signed with {ALGORITHM}, not {header.get('alg')!r}")
        if header.get("kid") not in (None, self.keys.kid):
            raise Unauthorized("The token was signed with a key this HAT does not have")
        try:
            claims = jwt.decode(
                token,
                self._public,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                issuer=self.accepted_issuers,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "accessScope"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("The token was issued by another HAT") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The token's signature does not match this HAT's key") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"The token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is invalid: {exc}") from None
        if claims.get("resource") not in self.accepted_issuers:
            raise Unauthorized("The token is not for this HAT's API (its resource is another service)")
        if claims["accessScope"] == VALIDATE_SCOPE:
            raise Unauthorized("A login token proves identity only; it cannot call the API")
        return Claims(
            user_id=str(claims["sub"]),
            role=str(claims["accessScope"]),
            resource=str(claims["resource"]),
            jti=str(claims.get("jti", "")),
            expires=int(claims["exp"]),
            approval=str(claims["approval"]) if "approval" in claims else None,
        )

    def earlier(self, token: str, max_age: int) -> Claims | None:
        """The claims of an API token this HAT issued at most `max_age` seconds ago, expired or not
        (a client's proof at login that it has logged in before), or None."""
        try:
            if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
                return None
            claims = jwt.decode(
                token,
                self._public,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                issuer=self.accepted_issuers,
                options={"verify_exp": False, "require": ["iat", "iss", "sub", "accessScope", "jti"]},
            )
        except jwt.InvalidTokenError:
            return None
        if claims.get("resource") not in self.accepted_issuers or claims["accessScope"] == VALIDATE_SCOPE:
            return None
        if "approval" in claims:  # given to an approved service: proof of that service, no device of the owner's
            return None
        if not isinstance(claims["iat"], int) or claims["iat"] < time.time() - max_age:
            return None
        return Claims(
            user_id=str(claims["sub"]),
            role=str(claims["accessScope"]),
            resource=str(claims["resource"]),
            jti=str(claims["jti"]),
            expires=int(claims.get("exp", 0)),
        )
