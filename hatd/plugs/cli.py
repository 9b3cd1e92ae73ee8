"""`hatd plug KIND FILE... --hat URL`: import files into a HAT over its API. The account comes from
the environment (HAT_TOKEN, or HAT_USERNAME and HAT_PASSWORD) or a prompt, never the command line,
where other users of the machine could read it."""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from hatd.client.aio import AsyncHat
from hatd.client.models import HatError
from hatd.exports.progress import ProgressBar
from hatd.plugs import KINDS, Summary, import_file, make_plug

HELP = """The account: HAT_TOKEN (a token), or HAT_USERNAME and HAT_PASSWORD; without them the command
asks on the terminal. The HAT: --hat URL, or HAT_URL.

A second import of the same file stores nothing twice. Prints, for each file, how many records were
new, already there, and refused (each with its line and why). Exit status: 0 when every item is in
the HAT, 1 when something was refused or the import stopped, 2 for a usage error."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plug = sub.add_parser(
        "plug",
        help="import iCalendar, GPX or CSV files into a HAT through its API",
        description="Import FILEs into the HAT at URL through its API: ical (.ics: events, with an `event` "
        "entity each, linked to its `location`), gpx (tracks, their points, waypoints), csv (the header row "
        "names the fields, one record per row). docs/plugs.md says what each makes.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plug.add_argument("kind", metavar="KIND", choices=(*KINDS, "ics"), help="ical, gpx or csv")
    plug.add_argument("files", metavar="FILE", nargs="+", help="the files to import")
    plug.add_argument("--hat", metavar="URL", default=os.environ.get("HAT_URL"), help="the HAT's address")
    plug.add_argument("--table", metavar="NAME", help="csv: the table (default: the file's name)")
    plug.add_argument("--key", metavar="COLUMN", help="csv: the column that names each row (default: its content)")
    plug.add_argument("--time", metavar="COLUMN", help="csv: the column holding each row's time")
    plug.add_argument("--source", metavar="SOURCE", default="csv", help="csv: the table's source (csv)")
    plug.set_defaults(run=run)


def credentials(stdin: TextIO = sys.stdin) -> tuple[str | None, str | None, str | None]:
    """(token, username, password) from the environment, else asked for on the terminal."""
    token = os.environ.get("HAT_TOKEN")
    if token:
        return token, None, None
    username, password = os.environ.get("HAT_USERNAME"), os.environ.get("HAT_PASSWORD")
    if username and password:
        return None, username, password
    if not stdin.isatty():
        raise SystemExit(
            "hatd plug: no account: set HAT_TOKEN, or HAT_USERNAME and HAT_PASSWORD (or run it on a terminal)"
        )
    username = username or input("HAT username (email): ").strip()
    return None, username, password or getpass.getpass("HAT password: ")


async def _import(args: argparse.Namespace, token: str | None, username: str | None, password: str | None) -> int:
    plug = make_plug(args.kind, table=args.table, key=args.key, time=args.time, source=args.source)
    summaries: list[Summary] = []
    async with AsyncHat(args.hat, token) as hat:
        if token is None:
            assert username is not None and password is not None
            await hat.log_in(username, password)
        for path in args.files:
            name = Path(path).name
            try:
                data = await asyncio.to_thread(Path(path).read_bytes)
            except OSError as exc:
                summaries.append(Summary(path, error=f"cannot read it: {exc.strerror or exc}"))
                print(*summaries[-1].lines(), sep="\n", flush=True)
                continue
            bar = ProgressBar(f"{name}:")
            summary = await import_file(
                hat, plug, data, name, progress=functools.partial(bar.advance, ""), on_parsed=bar.start
            )
            if summary.error is None:  # the bar was started: end its line
                bar.finish()
            summaries.append(summary)
            for line in summary.lines():
                print(line, flush=True)
            if summary.stopped is not None:
                break  # the next files would stop the same way
    return 0 if all(summary.ok for summary in summaries) and len(summaries) == len(args.files) else 1


def run(settings: object, args: argparse.Namespace) -> int:
    if not args.hat:
        print("hatd plug: give the HAT's address: --hat URL (or HAT_URL)", file=sys.stderr)
        return 2
    if args.kind != "csv" and (args.table or args.key or args.time):
        print("hatd plug: --table, --key and --time are for csv files", file=sys.stderr)
        return 2
    token, username, password = credentials()
    try:
        return asyncio.run(_import(args, token, username, password))
    except HatError as exc:
        print(f"hatd plug: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad --hat address
        print(f"hatd plug: {exc}", file=sys.stderr)
        return 2
