"""Request and response shapes of the accounts and token routes."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from hatd.accounts.passwords import MAX_COST, MAX_PASSWORD_BYTES, MIN_GIVEN_COST, hash_cost
from hatd.web.schemas import MAX_SERVICE_NAME, check_redirect, check_service_name

CREATABLE_ROLES = ("dataDebit", "dataCredit")


def _password_fits(value: str) -> None:
    if not 0 < len(value.encode()) <= MAX_PASSWORD_BYTES:
        raise ValidationError(f"must be 1 to {MAX_PASSWORD_BYTES} bytes long")
    cost = hash_cost(value)
    if cost is not None and not MIN_GIVEN_COST <= cost <= MAX_COST:
        raise ValidationError(f"a bcrypt hash must have a cost from {MIN_GIVEN_COST} to {MAX_COST}, not {cost}")


class NewAccountSchema(Schema):
    """POST /users/user. `pass` is a bcrypt hash (as the spec says) or a plain password, which is hashed."""

    class Meta:
        unknown = EXCLUDE

    userId = fields.UUID(load_default=None, metadata={"description": "Optional; the HAT makes one if absent"})
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(
        required=True,
        data_key="pass",
        validate=_password_fits,
        metadata={
            "description": f"A bcrypt hash of cost {MIN_GIVEN_COST} to {MAX_COST}, or a plain password of 1 to "
            f"{MAX_PASSWORD_BYTES} bytes (also: password)"
        },
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(CREATABLE_ROLES))

    @pre_load
    def accept_password_spelling(self, data: Any, **_: Any) -> Any:
        # The spec names the field `pass`; `password` is accepted too.
        if isinstance(data, dict) and "pass" not in data and "password" in data:
            data = {**data, "pass": data["password"]}
        return data


class AccountSchema(Schema):
    userId = fields.UUID(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(("owner", "platform", *CREATABLE_ROLES)))
    enabled = fields.Boolean(required=True)


class AccessTokenSchema(Schema):
    accessToken = fields.String(required=True, metadata={"description": "An RS256 JWT; verify it with /publickey"})
    userId = fields.UUID(required=True)


class MessageSchema(Schema):
    message = fields.String(required=True)


class AccountStateSchema(Schema):
    message = fields.String(required=True)
    userId = fields.UUID(required=True)
    enabled = fields.Boolean(required=True)


class ApplicationTokenQuerySchema(Schema):
    """GET /users/application_token?name=ServiceName&resource=https://service/path."""

    class Meta:
        unknown = EXCLUDE  # the owner's token may travel in the query too

    name = fields.String(
        required=True,
        validate=[validate.Length(max=MAX_SERVICE_NAME), check_service_name],
        metadata={"description": "The service the token is for (shown in logs, not in the token)"},
    )
    resource = fields.String(
        required=True,
        validate=check_redirect,
        metadata={"description": "The service's address: the token's `resource`, which the service checks"},
    )
