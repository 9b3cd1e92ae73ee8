"""`make fuzz`: Schemathesis against a HAT this script starts itself.

A new HAT on the embedded PostgreSQL in a scratch folder, served by `hatd serve`; Schemathesis
reads its /api/openapi.json and sends generated requests (examples, edge cases, random and
stateful sequences) with the owner's token, for FUZZ_SECONDS (default 300). It fails on any 5xx,
on an answer the document does not describe (status, content type, headers, schema), on a
method a path does not serve answered otherwise than 405, and on any traceback the server logs.
Afterwards the server, its PostgreSQL and the folder are gone. Not part of `make test`.

    make fuzz                      # 5 minutes
    FUZZ_SECONDS=60 make fuzz      # a quick one
    FUZZ_SEED=42 make fuzz         # repeat a run's choices
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OWNER = ("owner@fuzz.test", "fuzz-owner-password")
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
])  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("fuzz: hatd serve did not start")
        time.sleep(0.3)


def _owner_token(base: str) -> str:
    request = urllib.request.Request(f"{base}/users/access_token", headers={"username": OWNER[0], "password": OWNER[1]})
    with urllib.request.urlopen(request, timeout=10) as answer:
        token: str = json.load(answer)["accessToken"]
    return token


def _call(base: str, token: str, method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
    request = urllib.request.Request(f"{base}{path}", data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"fuzz: seeding failed: {method} {path} -> {exc.code} {exc.read().decode()}") from None


def _seed(base: str, token: str) -> None:
    """A little of everything, so that the fuzzer's ids (it likes 0 and 1) find things: a table
    tree with records and values, an entity of each kind with a property, bundles and a debit."""
    table = _call(base, token, "POST", "/data/table", {
        "name": "kitchen", "source": "fibaro", "fields": [{"name": "temperature"}, {"name": "humidity"}],
        "subTables": [{"name": "fridge", "source": "fibaro", "fields": [{"name": "door"}]}],
    })  # fmt: skip
    fields = [field["id"] for field in table["fields"]]
    _call(base, token, "POST", "/data/record/values", [
        {"record": {"name": f"r{i}"}, "values": [{"value": str(20 + i), "field": {"id": f}} for f in fields]}
        for i in range(3)
    ])  # fmt: skip
    for kind in ("person", "thing", "event", "location", "organisation"):
        body = {"name": f"a {kind}"} | ({"personId": "me.hat"} if kind == "person" else {})
        _call(base, token, "POST", f"/{kind}", body)
    kitchen = {"id": table["id"], "name": "kitchen", "source": "fibaro"}
    bundle = {"name": "b", "bundleTable": [{"name": "all kitchen", "table": kitchen}]}
    _call(base, token, "POST", "/bundles/contextless", bundle)
    now = time.time()
    _call(base, token, "POST", "/dataDebit/propose", {
        "name": "d", "kind": "contextless", "rolling": False, "sell": False, "price": 0,
        "startDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400)),
        "endDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400)),
        "bundleContextless": {"id": 1},
    })  # fmt: skip


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    seconds = int(os.environ.get("FUZZ_SECONDS", "300"))
    folder = Path(tempfile.mkdtemp(prefix="hatd-fuzz-"))
    folder.chmod(0o755)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATD_")}
    env.update(
        HATD_DATA_DIR=str(folder / "var"), HATD_PORT=str(port), HATD_HAT_ADDRESS=base,
        HATD_OWNER_EMAIL=OWNER[0], HATD_OWNER_PASSWORD=OWNER[1], HATD_PLATFORM_PASSWORD="fuzz-platform-password",
        HATD_BCRYPT_ROUNDS="4", HATD_LOGIN_BURST="100000", HATD_LOGIN_REFILL_SECONDS="0.001",
        HATD_PAGE_LOGIN_BURST="100000", HATD_PAGE_LOGIN_REFILL_SECONDS="0.001", HATD_LOG_LEVEL="warning",
    )  # fmt: skip
    log_path = folder / "hatd.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "hatd", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log)
    old_term = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit("fuzz: stopped")))
    try:
        _wait_until_healthy(base, server)
        token = _owner_token(base)
        _seed(base, token)
        command = [
            str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/api/openapi.json",
            "--checks", CHECKS, "--header", f"X-Auth-Token: {token}",
            "--max-time", str(seconds), "--workers", "1", "--request-timeout", "30",
            "--suppress-health-check", "all", "--max-redirects", "0", "--output-truncate", "true",
            "--report", "junit", "--report-dir", str(ROOT / "test-output" / "fuzz"),
        ]  # fmt: skip
        if os.environ.get("FUZZ_SEED"):
            command += ["--seed", os.environ["FUZZ_SEED"]]
        print(f"fuzz: hatd on {base} for {seconds} s; its log: test-output/fuzz/hatd.log", flush=True)
        fuzzed = subprocess.run(command, cwd=ROOT, check=False).returncode
    finally:
        _stop(server)
        signal.signal(signal.SIGTERM, old_term)
        (ROOT / "test-output" / "fuzz").mkdir(parents=True, exist_ok=True)
        kept = ROOT / "test-output" / "fuzz" / "hatd.log"
        shutil.copyfile(log_path, kept)
        shutil.rmtree(folder, ignore_errors=True)
    server_log = kept.read_text(errors="replace")
    tracebacks = server_log.count("Traceback (most recent call last)")
    if tracebacks:
        print(f"fuzz: FAILED: the server logged {tracebacks} traceback(s); see {kept}", file=sys.stderr)
    if fuzzed or tracebacks:
        return 1
    print("fuzz: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
