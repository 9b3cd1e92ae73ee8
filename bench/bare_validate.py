"""The yardstick of bench_tokens.py: a bare aiohttp server whose one handler answers what
GET /users/access_token/validate answers, with no authentication, middleware or access log.
Run as `python bench/bare_validate.py PORT`; it serves until it is stopped."""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def validate(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps({"message": "Authenticated"}), content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/users/access_token/validate", validate)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
