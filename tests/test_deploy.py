"""deploy/: the files parse, set only variables the service reads, and run documented commands."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from service.ops.cli import parser
from service.store.embedded import RedisProcess, free_port
from service.store.scripts import SCRIPT_NAMES
from tests.support.deploy_files import (
    COMPOSE_ONLY,
    DEPLOY,
    ENV_NAME,
    KUBE,
    ROOT,
    compose,
    config_variables,
    containers,
    deploy_commands,
    dockerfile,
    env_file_names,
    kube_documents,
    systemd_settings,
)
from tests.support.locks import REQUIREMENTS, asked_pins, lock_pins
from tests.support.polling import eventually
from tests.test_cli import TOKENBROKER, base_env, run


def test_yaml_files_parse() -> None:
    """compose.yaml and the Kubernetes files parse, with the workloads and probes asked for."""
    services = compose()["services"]
    assert set(services) == {"web", "worker", "redis"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["redis"]["image"].startswith("redis:7")
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in kube_documents())
    assert kinds == [
        ("ConfigMap", "tokenbroker"),
        ("Deployment", "tokenbroker-web"),
        ("Deployment", "tokenbroker-worker"),
        ("PodDisruptionBudget", "tokenbroker-web"),
        ("Secret", "tokenbroker"),
        ("Service", "tokenbroker-web"),
    ]
    web, worker = sorted(containers(), key=lambda c: str(c["name"]))
    assert web["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert web["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["livenessProbe"]["exec"]["command"] == ["tokenbroker", "worker", "--check"]
    assert all(c["resources"]["requests"] for c in (web, worker))
    listed = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    assert all((KUBE / name).exists() for name in listed)


def test_deploy_files_set_only_variables_the_service_reads() -> None:
    """Each variable set by compose, env file, Kubernetes, systemd or image is one Config reads."""
    known = config_variables()
    env_example = env_file_names(DEPLOY / "tokenbroker.env.example")
    assert {"REDIS_URL", "TOKENBROKER_SECRET", "TOKENBROKER_BASE_URL"} <= env_example
    used: dict[str, set[str]] = {"tokenbroker.env.example": env_example}
    for name, service in compose()["services"].items():
        if "build" in service:
            used[f"compose {name}"] = set(service.get("environment") or {})
            assert [e["path"] for e in service["env_file"]] == ["tokenbroker.env"]
    for doc in kube_documents():
        used[f"{doc['kind']} data"] = set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for container in containers():
        used[container["name"]] = {e["name"] for e in container.get("env", [])}
    secret = next(d for d in kube_documents() if d["kind"] == "Secret")
    assert {"REDIS_URL", "TOKENBROKER_SECRET"} <= set(secret["stringData"])
    used["systemd"] = {v.split("=", 1)[0] for _, k, v in systemd_settings() if k == "Environment"}
    used["Dockerfile"] = {
        pair.split("=", 1)[0]
        for kind, args in dockerfile()
        if kind == "ENV"
        for pair in args.split()
        if ENV_NAME.match(pair.split("=", 1)[0])
    }
    for path in [DEPLOY / "compose.yaml", *KUBE.glob("*.yaml")]:  # ${VAR} / $(VAR) references
        used[path.name] = set(re.findall(r"\$[{(]([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    assert used["compose.yaml"] >= COMPOSE_ONLY, "compose takes Redis's password from .env"
    used["compose.yaml"] -= COMPOSE_ONLY
    assert all(f"`{name}`" in (DEPLOY / "README.md").read_text() for name in COMPOSE_ONLY)
    for where, names in used.items():
        unknown = names - known
        assert not unknown, f"{where} sets {sorted(unknown)}, which the service never reads"
        assert all(ENV_NAME.match(n) or n.startswith("PYTHON") for n in names), where


async def test_env_example_is_what_the_command_prints(tmp_path: Path) -> None:
    """`tokenbroker config --env-example` prints deploy/tokenbroker.env.example as it is."""
    result = await run("config", "--env-example", env=base_env(None), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout == (DEPLOY / "tokenbroker.env.example").read_text()


def test_image_installs_the_locked_dependencies() -> None:
    """The image installs requirements/deploy.lock with hashes, then the project without deps."""
    steps = [f"{kind} {args}" for kind, args in dockerfile()]
    copied = steps.index("COPY requirements/deploy.lock ./requirements/")
    locked = steps.index("RUN pip install --require-hashes -r requirements/deploy.lock")
    project = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install --no-deps . "))
    assert copied < locked < project
    pins = lock_pins(REQUIREMENTS / "deploy.lock")
    assert all(pin.hashes for pin in pins.values())
    for name, version in asked_pins().items():  # what pyproject.toml asks for, at its version
        assert pins[name].version == version, name
    assert not {"pytest", "mypy", "ruff", "hatchling"} & set(pins)  # the service's only
    tested = lock_pins(REQUIREMENTS / "test.lock")  # the versions the tests ran against
    assert {n: p.version for n, p in pins.items()} == {n: tested[n].version for n in pins}


def test_deploy_commands_are_documented_and_parse() -> None:
    """Each command of the image, compose, probes and units is documented and a real CLI command."""
    documented = (DEPLOY / "README.md").read_text() + (ROOT / "README.md").read_text()
    commands = deploy_commands()
    assert len(commands) >= 9
    for where, argv in commands.items():
        assert argv[0] == "tokenbroker", where
        assert f"`{' '.join(argv)}`" in documented, f"{where}: {argv} is not documented"
        parser().parse_args(argv[1:])  # exits (fails the test) on an unknown command or option
    assert "No Docker engine" in documented


async def start(argv: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """Start one of the deploy commands with the venv's console script."""
    return await asyncio.create_subprocess_exec(
        str(TOKENBROKER),
        *argv[1:],
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, bytes]:
    """SIGTERM the process as a container stop does; its exit code and stderr."""
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(25):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err


def image_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The image's environment: the Dockerfile's ENV, the test's Redis and key, a free port."""
    env = base_env(redis_url)
    for kind, args in dockerfile():
        if kind == "ENV":
            for pair in args.split():
                if "=" in pair:
                    name, _, value = pair.partition("=")
                    env[name] = value
    env["TOKENBROKER_PORT"] = str(free_port())
    env["TOKENBROKER_WORKER_HEALTH_FILE"] = str(tmp_path / "worker.health")
    return env


async def test_image_web_command_and_healthcheck(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    """The image's CMD serves on all addresses; HEALTHCHECK exits 1 before, 0 while, 1 after."""
    commands, env = deploy_commands(), image_env(redis_server.url, tmp_path)
    assert env["TOKENBROKER_HOST"] == "0.0.0.0"  # noqa: S104 - the image's

    async def healthy() -> bool:
        check = await run(*commands["Dockerfile HEALTHCHECK"][1:], env=env, cwd=tmp_path)
        return check.code == 0

    assert not await healthy()
    proc = await start(commands["Dockerfile CMD"], env, tmp_path)
    try:
        await eventually(healthy, 20, "the image's HEALTHCHECK to pass", every_s=0.05)
    finally:
        code, err = await stop(proc)
    assert code == 0 and b"Traceback" not in err, err.decode()
    assert not await healthy()


async def test_worker_command_and_its_check(redis_server: RedisProcess, tmp_path: Path) -> None:
    """The compose worker command runs; `worker --check` (healthcheck, liveness) follows it."""
    commands, env = deploy_commands(), image_env(redis_server.url, tmp_path)
    assert commands["compose worker"] == commands["kubernetes worker"]
    assert commands["compose worker healthcheck"] == commands["kubernetes worker liveness"]

    async def alive() -> bool:
        check = await run(*commands["compose worker healthcheck"][1:], env=env, cwd=tmp_path)
        return check.code == 0

    assert not await alive()
    proc = await start(commands["compose worker"], env, tmp_path)
    try:
        await eventually(alive, 20, "`worker --check` to pass", every_s=0.05)
    finally:
        code, err = await stop(proc)
    assert code == 0 and b"Traceback" not in err, err.decode()


@pytest.mark.timeout(120)
def test_non_editable_install_ships_scripts_and_templates(tmp_path: Path) -> None:
    """The wheel `pip install .` builds holds every Lua script and the templates, and runs."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=100,
    )
    wheel = next(tmp_path.glob("tokenbroker-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"service/store/lua/{name}.lua" for name in SCRIPT_NAMES} <= names
    assert any(n.startswith("service/templates/") for n in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    shown = subprocess.run(
        [sys.executable, "-c", "import service.store.scripts as m; print(m.__file__)"],
        env={"PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert shown.stdout.strip().startswith(str(target))
    helped = subprocess.run(
        [sys.executable, "-m", "service", "web", "--help"],
        env={"PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert "--check" in helped.stdout
