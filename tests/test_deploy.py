"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/kubernetes/) against the code: every
HATD_* variable they name is a real setting, and every HAT they serve has an address, a database
and a role of its own, provisioned by the same deployment. No docker or kubectl here: this reads
the files, so a renamed setting or a copied-but-unedited HAT fails the suite."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hatd.settings import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SETTINGS = {ENV_PREFIX + field.name.upper() for field in dataclasses.fields(Settings)} | {"HATD_CONFIG"}
DEPLOYMENTS = {"compose": [DEPLOY / "compose.yaml"], "kubernetes": sorted((DEPLOY / "kubernetes").glob("*.yaml"))}


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def environments(node: Any) -> list[dict[str, str]]:
    """Every environment in a parsed file: compose's `environment` (a mapping or KEY=VALUE list) and
    Kubernetes' container `env` (a list of {name, value}), as {name: value} (valueFrom: no value)."""
    found: list[dict[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "environment" and isinstance(value, dict):
                found.append({str(k): str(v) for k, v in value.items()})
            elif key == "environment" and isinstance(value, list):
                found.append(dict(str(item).split("=", 1) for item in value))
            elif key == "env" and isinstance(value, list) and all(isinstance(item, dict) for item in value):
                found.append({item["name"]: str(item.get("value", "")) for item in value})
            else:
                found.extend(environments(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(environments(item))
    return found


def served_hats(paths: list[Path]) -> list[dict[str, str]]:
    """The environments that serve a HAT: those giving both a database and an address."""
    return [
        env
        for path in paths
        for doc in documents(path)
        for env in environments(doc)
        if "HATD_DATABASE_URL" in env and "HATD_HAT_ADDRESS" in env
    ]


def dsn_parts(dsn: str) -> Any:
    """urlsplit of a DSN whose password is a compose ${VAR:?message} or Kubernetes $(VAR) reference."""
    return urlsplit(re.sub(r"\$\{[^}]*\}|\$\([^)]*\)", "secret", dsn))


def provisioned(paths: list[Path]) -> dict[str, str]:
    """{name: address} of the `provision NAME ADDRESS ...` calls in the files' provisioning scripts."""
    calls = (re.findall(r"^\s*provision ([a-z][a-z0-9_]*) (\S+) ", path.read_text(), re.MULTILINE) for path in paths)
    return {name: address for found in calls for name, address in found}


@pytest.mark.parametrize("path", [REPO / "Dockerfile", *(p for paths in DEPLOYMENTS.values() for p in paths)])
def test_every_hatd_variable_named_is_a_setting(path: Path) -> None:
    named = set(re.findall(r"\bHATD_[A-Z0-9_]*[A-Z0-9]", path.read_text()))

    assert named <= SETTINGS, f"{path.relative_to(REPO)} names unknown settings: {sorted(named - SETTINGS)}"


def test_the_files_name_the_settings_that_matter() -> None:
    named = {path: set(re.findall(r"\bHATD_[A-Z0-9_]*[A-Z0-9]", path.read_text())) for path in DEPLOYMENTS["compose"]}

    assert {"HATD_DATABASE_URL", "HATD_HAT_ADDRESS", "HATD_PORT"} <= set.union(*named.values())
    assert {"HATD_HOST", "HATD_PORT", "HATD_DATA_DIR"} <= set(
        re.findall(r"HATD_\w+", (REPO / "Dockerfile").read_text())
    )


def test_every_deploy_file_is_valid_yaml() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))

    assert len(files) >= 8
    for path in files:
        assert documents(path), path


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_each_hat_has_its_own_address_database_and_role_and_is_provisioned(deployment: str) -> None:
    paths = DEPLOYMENTS[deployment]
    hats = served_hats(paths)
    made = provisioned(paths)

    assert len(hats) >= 3
    addresses = [env["HATD_HAT_ADDRESS"] for env in hats]
    dsns = [dsn_parts(env["HATD_DATABASE_URL"]) for env in hats]
    databases = [dsn.path.lstrip("/") for dsn in dsns]
    assert len(set(addresses)) == len(hats), addresses
    assert len(set(databases)) == len(hats), databases
    for env, dsn, database in zip(hats, dsns, databases, strict=True):
        assert dsn.scheme == "postgresql"
        # The HAT's own role, never the admin: one HAT's process cannot reach another's database.
        assert dsn.username == database != "postgres"
        assert made.get(database) == env["HATD_HAT_ADDRESS"], f"{database} is served but not provisioned so"
    assert set(made) == set(databases)


def test_compose_gives_each_hat_its_own_port() -> None:
    hats = served_hats(DEPLOYMENTS["compose"])

    ports = [env["HATD_PORT"] for env in hats]
    assert len(set(ports)) == len(hats)
    for env in hats:
        assert urlsplit(env["HATD_HAT_ADDRESS"]).port == int(env["HATD_PORT"])


def test_kubernetes_hats_are_non_root_probed_on_health_and_limited() -> None:
    deployments = [
        doc for path in DEPLOYMENTS["kubernetes"] for doc in documents(path) if doc.get("kind") == "Deployment"
    ]

    assert len(deployments) == len(served_hats(DEPLOYMENTS["kubernetes"]))
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        # /health asks the database: a liveness probe on it would restart every HAT's pod, over and
        # over, while PostgreSQL is down. Alive means the process answers on its port.
        assert set(container["livenessProbe"]) & {"httpGet", "exec", "grpc"} == set()
        assert container["livenessProbe"]["tcpSocket"]["port"] == "http"
        assert container["resources"]["limits"]["memory"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        # Longer than hatd's 30 s of graceful shutdown.
        assert pod["terminationGracePeriodSeconds"] > 30


def seconds(duration: str) -> float:
    """A compose duration (40s, 1m30s, 1h) in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", duration)
    assert parts and duration, f"not a duration: {duration!r}"
    hours, minutes, secs, millis = (int(part or 0) for part in parts.groups())
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def test_seconds_reads_compose_durations() -> None:
    assert [seconds(d) for d in ("40s", "1m30s", "1h", "500ms", "2m")] == [40, 90, 3600, 0.5, 120]


def test_compose_lets_each_hat_finish_its_graceful_shutdown() -> None:
    [compose] = documents(DEPLOY / "compose.yaml")
    hats = {
        name: service
        for name, service in compose["services"].items()
        if {"HATD_DATABASE_URL", "HATD_HAT_ADDRESS"} <= set(service.get("environment", {}))
    }

    assert len(hats) >= 3
    for name, service in hats.items():
        # Docker kills after 10 s by default; hatd takes up to 30 s to finish requests in flight.
        assert seconds(str(service.get("stop_grace_period", "10s"))) >= 35, name


def admin_user_reference(env: list[dict[str, Any]]) -> str:
    """The variable the provisioning container's admin DSN takes its user from: $(VAR) only."""
    [dsn] = [item["value"] for item in env if item["name"] == "HATD_DATABASE_URL"]
    user = urlsplit(dsn).netloc.rpartition("@")[0].partition(":")[0]
    reference = re.fullmatch(r"\$\((\w+)\)", user)
    assert reference, f"the admin user is written into the DSN: {user!r}"
    return reference[1]


def test_kubernetes_provisioning_takes_the_admin_user_from_the_secret() -> None:
    [job] = [doc for doc in documents(DEPLOY / "kubernetes" / "provision-job.yaml") if doc["kind"] == "Job"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    variable = admin_user_reference(container["env"])

    [source] = [item for item in container["env"] if item["name"] == variable]
    assert source["valueFrom"]["secretKeyRef"]["name"] == "postgres"
    # The DSN refers to it, so it must be defined before HATD_DATABASE_URL (Kubernetes expands in order).
    names = [item["name"] for item in container["env"]]
    assert names.index(variable) < names.index("HATD_DATABASE_URL")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = documents(DEPLOY / "kubernetes" / "kustomization.yaml")[0]
    manifests = {path.name for path in DEPLOYMENTS["kubernetes"]} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == manifests
