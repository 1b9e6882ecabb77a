"""A real Prometheus (Debian's package) on loopback: scrapes web and worker, answers PromQL."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from service.store.embedded import free_port
from tests.support.polling import eventually
from tests.support.processes import die_with_parent, tail
from tests.support.promql import ALERTS, ROOT

WEB_JOB, WORKER_JOB = "tokenbroker-web", "tokenbroker-worker"


def binary(name: str) -> str:
    """Path of `prometheus` or `promtool`; a clear failure when `make test` did not install them."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is missing: these tests need Debian's prometheus package "
            "(`make test` installs it: apt-get install --no-install-recommends prometheus)"
        )
    return path


def readme_config() -> dict[str, Any]:
    """The prometheus.yml of README.md's operations section, parsed."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(# prometheus\.yml\n.*?)```", text, re.DOTALL)
    assert len(blocks) == 1, "README.md shows one prometheus.yml"
    return dict(yaml.safe_load(blocks[0]))


def scrape_config(web: str, token_file: Path, worker: str, interval_s: float) -> dict[str, Any]:
    """README.md's prometheus.yml, pointed at these targets, token and rules, scraped often."""
    config = readme_config()
    every = f"{int(interval_s * 1000)}ms"
    config["global"] = {"scrape_interval": every, "evaluation_interval": every}
    config["rule_files"] = [str(ALERTS)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {WEB_JOB, WORKER_JOB}
    jobs[WEB_JOB]["authorization"]["credentials_file"] = str(token_file)
    jobs[WEB_JOB]["static_configs"] = [{"targets": [web]}]
    jobs[WORKER_JOB]["static_configs"] = [{"targets": [worker]}]
    return config


@dataclass
class Prometheus:
    """One prometheus process with its own data directory; stopped by stop()."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, config: dict[str, Any], workdir: Path) -> Prometheus:
        """Write `config`, start prometheus on a free loopback port (retention: the test)."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port, log = free_port(), workdir / "prometheus.log"
        argv = [
            binary("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
            )
        return cls(f"http://127.0.0.1:{port}", process, log)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        """The end of its log, for failure messages."""
        return f"--- prometheus (exit {self.process.poll()}):\n{tail(self.log)}"

    async def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """GET /api/v1/query: the whole answer (status, data or errorType and error)."""
        params = {"query": expr, "time": f"{at if at is not None else time.time():.3f}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/query", params=params) as resp,
        ):
            return dict(await resp.json())

    async def query_range(self, expr: str, start: float, end: float, step_s: float) -> Any:
        """GET /api/v1/query_range: the result matrix (fails on an error answer)."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/query_range", params=params) as resp,
        ):
            answer = await resp.json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]

    async def alerting_rules(self) -> list[dict[str, Any]]:
        """GET /api/v1/rules: the alerting rules loaded, each with its state."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/rules", params={"type": "alert"}) as resp,
        ):
            answer = await resp.json()
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    async def targets_up(self, jobs: set[str]) -> bool:
        """True once every job has a target whose last scrape succeeded."""
        try:
            answer = await self.query("up == 1")
        except aiohttp.ClientError:
            return False
        if answer.get("status") != "success":
            return False
        return jobs <= {series["metric"]["job"] for series in answer["data"]["result"]}

    async def wait_up(self, jobs: set[str], timeout_s: float = 30.0) -> None:
        """Poll until every job was scraped successfully; fail with the log otherwise."""

        def alive() -> None:
            assert self.process.poll() is None, self.tail()

        await eventually(
            lambda: self.targets_up(jobs),
            timeout_s,
            f"{jobs} to be scraped",
            every_s=0.1,
            check=alive,
            diagnostics=self.tail,
        )
