"""What both benchmarks need: a real `hatd serve` on the embedded PostgreSQL in a scratch
folder, a handle on its database for the bare-SQL ceilings, and percentiles."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from hatd.embedded import EmbeddedPostgres  # noqa: E402

OWNER = ("owner@bench.test", "bench-owner-password")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def request_json(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    """The JSON answer of a request that must succeed (the benchmark stops if it does not)."""
    async with http.request(method, url, **kwargs) as response:
        body = await response.json()
        if response.status >= 300:
            raise SystemExit(f"{method} {url} -> {response.status} {body}")
        return body


def records_with_values(field_ids: list[int], start: int, count: int) -> list[dict[str, Any]]:
    """A body for POST /data/record/values: `count` records from number `start`, a value in each field."""
    return [
        {
            "record": {"name": f"r{r}"},
            "values": [{"value": f"{r}.{i}", "field": {"id": f}} for i, f in enumerate(field_ids)],
        }
        for r in range(start, start + count)
    ]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so the finally blocks stop the server and clean up


@contextmanager
def served_hat(settings: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(base URL, superuser DSN of its database) of a new HAT served by its own process; the
    server, PostgreSQL and the folder are gone afterwards."""
    with served_hat_process(settings) as (base, dsn, _):
        yield base, dsn


@contextmanager
def served_hat_process(settings: dict[str, str], root: Path = ROOT) -> Iterator[tuple[str, str, int]]:
    """As served_hat, with the server's process id (to read its memory); the hatd served is the
    one in `root` (another checkout, to measure two versions in one run)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    folder = Path(tempfile.mkdtemp(prefix="hatd-bench-"))
    folder.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATD_")}
    env.update(HATD_DATA_DIR=str(folder), HATD_PORT=str(port), HATD_OWNER_EMAIL=OWNER[0], HATD_OWNER_PASSWORD=OWNER[1])
    env["HATD_BACKUP_DIR"] = "off"  # these benchmarks measure requests alone; bench_backup.py measures backups
    env.update(settings)
    server: subprocess.Popen[bytes] | None = None
    embedded: EmbeddedPostgres | None = None
    try:
        server = subprocess.Popen([sys.executable, "-m", "hatd", "serve"], cwd=root, env=env, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("hatd serve did not start") from None
                time.sleep(0.2)
        embedded = EmbeddedPostgres(folder)
        embedded.start()
        yield f"http://127.0.0.1:{port}", embedded.dsn("hatd"), server.pid
    finally:
        try:
            if embedded is not None:
                embedded.stop()
        finally:
            if server is not None and server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
                    # The killed server left PostgreSQL running: adopt it, and stop it as the last user.
                    leftover = EmbeddedPostgres(folder)
                    leftover.start()
                    leftover.stop()
            shutil.rmtree(folder, ignore_errors=True)
