"""The accounts' roles, as tokens and the database name them. Every layer may use these: the route
table grants routes to them, repositories apply their rules (a debit's reader, say)."""

from __future__ import annotations

OWNER = "owner"
PLATFORM = "platform"
DATA_DEBIT = "dataDebit"
DATA_CREDIT = "dataCredit"
ALL_ROLES = frozenset({OWNER, PLATFORM, DATA_DEBIT, DATA_CREDIT})
