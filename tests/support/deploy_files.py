"""Readers of the deploy/ files for tests: Dockerfile instructions, YAML, units, commands."""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from service.config import Config

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
ENV_NAME = re.compile(r"^(?:REDIS_URL|TOKENBROKER_[A-Z0-9_]+)$")
COMPOSE_ONLY = {"REDIS_PASSWORD"}  # read by compose itself (deploy/.env), not by the service


class NotedEnvironment(Mapping[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.given, self.asked = values, set[str]()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.given[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)


def config_variables() -> set[str]:
    """Every variable Config.from_env reads, noted while it reads a valid environment."""
    key = base64.b64encode(bytes(32)).decode()
    env = NotedEnvironment({"REDIS_URL": "redis://127.0.0.1:6379/0", "TOKENBROKER_SECRET": key})
    Config.from_env(env)
    assert {"REDIS_URL", "TOKENBROKER_SECRET", "TOKENBROKER_WORKER_HEALTH_FILE"} <= env.asked
    return env.asked


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    rows = [line.strip() for line in text.splitlines()]
    return [(r.split()[0].upper(), r.split(None, 1)[1]) for r in rows if r and r[0] != "#"]


def docker_instruction(name: str) -> list[str]:
    """The exec-form (JSON) argv of the last NAME instruction (HEALTHCHECK: after CMD)."""
    args = [a for kind, a in dockerfile() if kind == name][-1]
    return list(json.loads(args[args.index("[") :]))


def kube_documents() -> list[dict[str, Any]]:
    """Every document of every Kubernetes manifest (kustomization.yaml lists them)."""
    files = [f for f in sorted(KUBE.glob("*.yaml")) if f.name != "kustomization.yaml"]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


def compose() -> dict[str, Any]:
    """compose.yaml, parsed."""
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def containers() -> Iterator[dict[str, Any]]:
    """Every container of every Kubernetes workload."""
    for doc in kube_documents():
        if doc["kind"] == "Deployment":
            yield from doc["spec"]["template"]["spec"]["containers"]


def systemd_settings() -> Iterator[tuple[str, str, str]]:
    """(unit file, key, value) of every setting of every systemd unit."""
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text().splitlines():
            if "=" in line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                yield unit.name, key.strip(), value.strip()


def env_file_names(path: Path) -> set[str]:
    """The variable names an env file sets."""
    lines = path.read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}


def deploy_commands() -> dict[str, list[str]]:
    """Every command the deploy files run, by where it is used, as argv."""
    entry = docker_instruction("ENTRYPOINT")
    found = {
        "Dockerfile CMD": entry + docker_instruction("CMD"),
        "Dockerfile HEALTHCHECK": docker_instruction("HEALTHCHECK"),
    }
    for name, service in compose()["services"].items():
        if "build" in service:
            found[f"compose {name}"] = entry + service["command"]
            found[f"compose {name} healthcheck"] = service["healthcheck"]["test"][1:]
    for container in containers():
        found[f"kubernetes {container['name']}"] = entry + container["args"]
        probe = container.get("livenessProbe", {}).get("exec")
        if probe:
            found[f"kubernetes {container['name']} liveness"] = probe["command"]
    for unit, key, value in systemd_settings():
        if key == "ExecStart":
            argv = shlex.split(value)
            found[f"systemd {unit}"] = [Path(argv[0]).name, *argv[1:]]
    return found
