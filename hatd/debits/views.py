"""Data debits: an account proposes to read a bundle for a window; the owner enables it; the
proposer then reads that bundle's data, and nothing else, until it ends or the owner disables it.
Seed 002, "Sharing and Direct Data Debits"."""

from __future__ import annotations

from aiohttp import web

from hatd import db
from hatd.bundles.schemas import BundleValuesQuerySchema
from hatd.debits import repository
from hatd.debits.schemas import DebitSchema, DebitStateSchema, LogEntrySchema, ProposeSchema
from hatd.http import json_response, json_text, parse_body, parse_query
from hatd.paging import paged_stream, read_page
from hatd.reads import PrettyQuerySchema
from hatd.roles import DATA_DEBIT, OWNER, PLATFORM
from hatd.routing import Route
from hatd.services import repository as services
from hatd.state import CALLER, POOL

PROPOSERS = frozenset({OWNER, PLATFORM, DATA_DEBIT})
OWNER_ONLY = frozenset({OWNER})
# The facts' table: debit values are the owner's, and a dataDebit proposer's; never the platform's.
READERS = frozenset({OWNER, DATA_DEBIT})
# A debit's key; "propose" is not one, so that GET, PUT and the like on /dataDebit/propose are 405.
KEY = "{key:(?!propose$)[^{}/]+}"


async def propose(request: web.Request) -> web.Response:
    debit = await parse_body(request, ProposeSchema)
    caller = request[CALLER]
    async with db.transaction(request.app[POOL]) as conn:
        return json_text(await repository.propose(conn, debit, caller.user_id, caller.role), status=201)


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    caller = request[CALLER]
    async with db.transaction(request.app[POOL]) as conn:
        key = await repository.set_enabled(conn, request.match_info["key"], enabled, caller.user_id)
        if enabled and caller.approval is not None:  # revoking the approval disables it again
            await services.record_grant(conn, caller.approval, key)
    return json_response({"message": "OK", "key": str(key), "enabled": enabled})


async def enable(request: web.Request) -> web.Response:
    return await _set_enabled(request, True)


async def disable(request: web.Request) -> web.Response:
    return await _set_enabled(request, False)


async def values(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    scope = f"debit:{key[:36]}"
    window, after, limit = read_page(request, scope)
    pretty = parse_query(request, PrettyQuerySchema)["pretty"]
    caller = request[CALLER]
    async with request.app[POOL].acquire() as conn:
        # The read is checked and logged first, and the log kept even if the client goes away
        # while the records are being written.
        async with conn.transaction():
            page = await repository.values(conn, key, caller.user_id, caller.role, window, after, limit, pretty=pretty)
        async with db.snapshot_on(conn):
            return await paged_stream(request, scope, page.parts, page.more)


async def list_debits(request: web.Request) -> web.Response:
    caller = request[CALLER]
    return json_text(await repository.debits(request.app[POOL], None if caller.role == OWNER else caller.user_id))


async def get_debit(request: web.Request) -> web.Response:
    caller = request[CALLER]
    return json_text(await repository.debit(request.app[POOL], request.match_info["key"], caller.user_id, caller.role))


async def debit_log(request: web.Request) -> web.Response:
    return json_text(await repository.log(request.app[POOL], request.match_info["key"]))


ROUTES = [
    Route("POST", "/dataDebit/propose", propose, name="propose_debit", roles=PROPOSERS, body=ProposeSchema,
          response=DebitSchema, status=201,
          summary="Propose a data debit over a bundle (made disabled; the HAT makes its key)",
          description="bundleContextless is a whole bundle in either shape, or one bundle table {name, table} "
          "as in the reference's example, or (the owner only) an existing bundle {id}."),
    Route("PUT", f"/dataDebit/{KEY}/enable", enable, name="enable_debit", roles=OWNER_ONLY,
          aliases=(f"/directDebit/{KEY}/enable",), response=DebitStateSchema, summary="Enable a data debit"),
    Route("PUT", f"/dataDebit/{KEY}/disable", disable, name="disable_debit", roles=OWNER_ONLY,
          aliases=(f"/directDebit/{KEY}/disable",), response=DebitStateSchema, summary="Disable a data debit"),
    # The Rumpel that HAT 2.3 bundled (2017-03 to 2017-05) sent these as POST: served too.
    Route("POST", f"/dataDebit/{KEY}/enable", enable, name="enable_debit_post", roles=OWNER_ONLY,
          response=DebitStateSchema, summary="Enable a data debit (POST, as a 2017 Rumpel sends it)"),
    Route("POST", f"/dataDebit/{KEY}/disable", disable, name="disable_debit_post", roles=OWNER_ONLY,
          response=DebitStateSchema, summary="Disable a data debit (POST, as a 2017 Rumpel sends it)"),
    Route("GET", f"/dataDebit/{KEY}/values", values, name="debit_values", roles=READERS, head=False,
          aliases=(f"/directDebit/{KEY}/values",), query=BundleValuesQuerySchema, response=DebitSchema,
          summary="The debit's fields and its bundle's data",
          description="The owner always; the proposer only while the debit is enabled and now lies between its "
          "startDate and endDate (403 saying which, otherwise). Each read is logged."),
    Route("GET", "/dataDebit", list_debits, name="list_debits", roles=READERS, response=DebitSchema, many=True,
          summary="Every data debit with its state (a dataDebit account: those it proposed)",
          description="The owner sees every debit; a dataDebit account only the ones it proposed, so an app that "
          "lost a key can find its debit again."),
    Route("GET", f"/dataDebit/{KEY}", get_debit, name="get_debit", roles=PROPOSERS, response=DebitSchema,
          summary="One data debit with its bundle (the owner, the platform, or its proposer)"),
    Route("GET", f"/dataDebit/{KEY}/log", debit_log, name="debit_log", roles=OWNER_ONLY, response=LogEntrySchema,
          many=True, summary="Who did what to a debit, and when: propose, enable, disable, each values read"),
]  # fmt: skip
