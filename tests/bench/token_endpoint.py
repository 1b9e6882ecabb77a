"""`make bench`: wrk against GET /v1/account/{id}/oauth-token and against a bare aiohttp handler.

The token endpoint is measured four times: as configured by default (tracing off, the audit
trail on); with the audit trail off (TOKENBROKER_AUDIT=off), side by side with the first; with
tracing on, exporting every trace to a counting OTLP/HTTP sink (tests/bench/otlp_sink.py) with
the SDK's default batching; and on with 1 % of the traces sampled (OTEL_TRACES_SAMPLER, as the
README shows).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import cast

import aiohttp
import orjson
from redis import Redis as SyncRedis

from service.clock import iso
from service.config_table import AUDIT_PARTITIONS
from service.store.embedded import RedisProcess, free_port
from service.store.keys import Keys
from tests.support.idp import Idp
from tests.support.processes import stop_processes, tail

ROOT = Path(__file__).resolve().parents[2]
TOKENBROKER = Path(sys.prefix) / "bin" / "tokenbroker"
ACCOUNTS = 1000
IMPORT_CONCURRENCY = 32
SCOPE = "openid email profile offline_access mail.read"
APP_ID = "idp"
THREADS, CONNECTIONS, WARMUP_S, DURATION_S = 2, 64, 2, 10
AUDIT_ROUNDS = 3  # audit off/on runs, alternated; the medians are compared (a shared machine)
START_TIMEOUT_S = 20.0
TARGET_RATIO, TARGET_P99_MS = 0.50, 20.0
SAMPLED_RATIO = "0.01"
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}

# One prebuilt request per account; each wrk thread picks one at random per request.
LUA = string.Template("""\
local token, count, requests, threads = "$token", $count, {}, 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + seed)
  local headers = {["Authorization"] = "Bearer " .. token}
  for i = 1, count do
    local path = string.format("/v1/account/bench-%04d/oauth-token", i - 1)
    requests[i] = wrk.format("GET", path, headers)
  end
end
function request()
  return requests[math.random(count)]
end
""")


class BenchError(RuntimeError):
    """The benchmark could not be set up or produced an invalid run."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str | None


def account_id(index: int) -> str:
    """The id of the index-th benchmark account (the Lua script builds the same)."""
    return f"bench-{index:04d}"


def service_env(redis_url: str) -> dict[str, str]:
    """The environment of the web process and of the CLI commands."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "TOKENBROKER_SECRET": base64.b64encode(os.urandom(32)).decode(),
        "TOKENBROKER_LOG_FORMAT": "json",
        "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES": "true",
        "TOKENBROKER_ALLOW_PRIVATE_URLS": "true",
    }


def spawn(
    stack: contextlib.ExitStack, args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start a process with stdout and stderr to `log`; stopped when `stack` closes."""
    out = stack.enter_context(log.open("ab"))
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
    )
    stack.callback(stop_processes, [process], 5)
    return process


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until it answers 200, the process dies, or START_TIMEOUT_S passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise BenchError(f"{process.args!r} exited ({process.returncode}):\n{tail(log, 20)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{url} not healthy after {START_TIMEOUT_S:.0f} s:\n{tail(log, 20)}")
        time.sleep(0.05)


def start_server(
    stack: contextlib.ExitStack, args: list[str], env: dict[str, str], log: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a server given `--port` last in `args`; return its base URL once healthy."""
    port = free_port()
    process = spawn(stack, [*args, str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(f"{base}/health", process, log)
    return base, process


def cli(env: dict[str, str], *args: str) -> str:
    """Run a `tokenbroker` command as a user would; return its stdout."""
    done = subprocess.run(
        [str(TOKENBROKER), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"tokenbroker {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def mint_grants(idp: Idp, count: int) -> list[tuple[str, str]]:
    """Mint `count` real grants at the provider; return (refresh token, access token) pairs."""
    grants = []
    for index in range(count):
        minted = idp.mint(f"{account_id(index)}-user", SCOPE)
        grants.append((str(minted["refresh_token"]), str(minted["access_token"])))
    return grants


async def _post(http: aiohttp.ClientSession, path: str, body: object, status: int) -> None:
    async with http.post(path, json=body) as response:
        if response.status != status:
            raise BenchError(f"POST {path} answered {response.status}: {await response.text()}")


def oidc_app(idp: Idp) -> dict[str, object]:
    """The body of POST /v1/oauth2 for an oidc app at the test provider."""
    return {
        "id": APP_ID,
        "provider": "oidc",
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
    }


def account_body(index: int, grant: tuple[str, str], expires: str) -> dict[str, object]:
    """The body of POST /v1/account importing one grant with a valid access token."""
    refresh, access = grant
    oauth2 = {
        "provider": APP_ID,
        "auth": {"user": f"{account_id(index)}@example.test"},
        "refreshToken": refresh,
        "accessToken": access,
        "expires": expires,
    }
    return {"account": account_id(index), "oauth2": oauth2}


async def load_accounts(base: str, api_token: str, idp: Idp, grants: list[tuple[str, str]]) -> int:
    """Create the app, import every grant, and return the byte size of one token answer."""
    headers = {"Authorization": f"Bearer {api_token}"}
    async with aiohttp.ClientSession(base_url=base, headers=headers) as http:
        await _post(http, "/v1/oauth2", oidc_app(idp), 200)  # EmailEngine answers 200
        expires = iso(int(time.time() * 1000) + 3_600_000)
        limit = asyncio.Semaphore(IMPORT_CONCURRENCY)

        async def one(index: int, grant: tuple[str, str]) -> None:
            async with limit:
                await _post(http, "/v1/account", account_body(index, grant, expires), 200)

        await asyncio.gather(*(one(index, grant) for index, grant in enumerate(grants)))
        async with http.get(f"/v1/account/{account_id(0)}/oauth-token") as response:
            body = await response.read()
            if response.status != 200:
                raise BenchError(f"the token endpoint answered {response.status}: {body!r}")
    if orjson.loads(body).get("accessToken") != grants[0][1]:
        raise BenchError(f"the token endpoint served another token: {body!r}")
    return len(body)


def _ms(value: str, unit: str) -> float:
    return float(value) * UNIT_MS[unit]


def _search(pattern: str, output: str) -> re.Match[str]:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        raise BenchError(f"no {pattern!r} in wrk's output:\n{output}")
    return match


def parse_wrk(output: str) -> WrkResult:
    """Parse the output of `wrk --latency`."""
    latency = r"^\s*{}%\s+([\d.]+)(us|ms|s|m|h)\s*$"
    p50 = _search(latency.format("50"), output)
    p99 = _search(latency.format("99"), output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s*(.+)$", output, re.MULTILINE)
    return WrkResult(
        requests=int(_search(r"^\s*(\d+) requests in", output).group(1)),
        rps=float(_search(r"^Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else None,
    )


def wrk(base: str, script: Path, seconds: int) -> WrkResult:
    """One wrk run; fails when any answer was not 2xx."""
    args = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    done = subprocess.run(
        [*args, "-s", str(script), f"{base}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr}{done.stdout}")
    result = parse_wrk(done.stdout)
    if result.non_2xx or not result.requests:
        raise BenchError(f"{base}: {result.non_2xx} non-2xx answers:\n{done.stdout}")
    return result


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Sample `pid` with py-spy (raw collapsed stacks to `out`) while the block runs."""
    if out is None:
        yield
        return
    spy = Path(sys.prefix) / "bin" / "py-spy"
    args = [str(spy), "record", "--pid", str(pid), "--duration", str(DURATION_S - 2)]
    args += ["--idle", "--format", "raw", "--output", str(out)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, err = process.communicate(timeout=30)
        if process.returncode != 0:
            raise BenchError(f"py-spy exited {process.returncode}: {err.decode()}")


def measure(
    base: str, script: Path, during: contextlib.AbstractContextManager[None] | None = None
) -> WrkResult:
    """A warm-up run, then the measured run (inside `during`, e.g. a profiler)."""
    wrk(base, script, WARMUP_S)
    with during or contextlib.nullcontext():
        return wrk(base, script, DURATION_S)


@dataclass(frozen=True)
class Results:
    """What the whole benchmark measured."""

    bare: WrkResult
    token: WrkResult
    traced: WrkResult  # the token endpoint with tracing on
    sampled: WrkResult  # the same with SAMPLED_RATIO of the traces sampled
    unaudited: WrkResult  # the token endpoint with the audit trail off
    audited: int  # audit records in Redis after the audited runs
    size: int  # bytes of one token answer
    spans: int  # spans the sink received from the traced run


def sink_spans(base: str) -> int:
    """How many spans the OTLP sink has received."""
    with urllib.request.urlopen(f"{base}/stats", timeout=5) as response:
        return int(orjson.loads(response.read())["spans"])


def run(stack: contextlib.ExitStack, profile: Path | None) -> Results:
    """Set everything up, measure bare, token, then token with tracing on."""
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not on PATH (apt-get install -y wrk)")
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenbroker-bench-")))
    redis = RedisProcess(tmp / "redis")
    redis.start()
    stack.callback(redis.stop)
    idp = Idp.start()
    stack.callback(idp.stop)
    env = service_env(redis.url)
    log = tmp / "web.log"
    web, web_process = start_server(stack, [str(TOKENBROKER), "web", "--port"], env, log)
    api_token = cli(env, "token", "create", "--scope", "*").splitlines()[-1].strip()
    cli(env, "settings", "set", "enableOAuthTokensApi", "true")
    print(f"bench: minting and importing {ACCOUNTS} accounts", file=sys.stderr)
    grants = mint_grants(idp, ACCOUNTS)
    size = asyncio.run(load_accounts(web, api_token, idp, grants))
    bare_args = [sys.executable, "-m", "tests.bench.bare_app", "--size", str(size), "--port"]
    bare, _ = start_server(stack, bare_args, dict(os.environ), tmp / "bare.log")
    sink_args = [sys.executable, "-m", "tests.bench.otlp_sink", "--port"]
    sink, _ = start_server(stack, sink_args, dict(os.environ), tmp / "sink.log")
    traced_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_SERVICE_NAME": "bench"}
    traced_web, _ = start_server(
        stack, [str(TOKENBROKER), "web", "--port"], traced_env, tmp / "traced.log"
    )
    sampled_env = {
        **traced_env,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": SAMPLED_RATIO,
    }
    sampled_web, _ = start_server(
        stack, [str(TOKENBROKER), "web", "--port"], sampled_env, tmp / "sampled.log"
    )
    unaudited_web, _ = start_server(
        stack,
        [str(TOKENBROKER), "web", "--port"],
        {**env, "TOKENBROKER_AUDIT": "off"},
        tmp / "off.log",
    )
    script = tmp / "accounts.lua"
    script.write_text(LUA.substitute(token=api_token, count=ACCOUNTS))
    idp.reset()
    print(f"bench: wrk {WARMUP_S}+{DURATION_S} s against the bare handler", file=sys.stderr)
    bare_result = measure(bare, script)
    print(f"bench: wrk {WARMUP_S}+{DURATION_S} s against the token endpoint", file=sys.stderr)
    # the token endpoint rows are the medians of AUDIT_ROUNDS runs with the audit trail on,
    # alternated with as many off
    token_result = measure(web, script, py_spy(web_process.pid, profile))
    on, off = [token_result], []
    for round_ in range(AUDIT_ROUNDS):
        print(
            f"bench: wrk {WARMUP_S}+{DURATION_S} s, the audit trail off, then on", file=sys.stderr
        )
        off.append(measure(unaudited_web, script))
        if round_ < AUDIT_ROUNDS - 1:
            on.append(measure(web, script))
    audited = audit_records(redis.url)
    with log.open("rb") as lines:
        logged, deaf = 0, 0
        for line in lines:
            logged += 1
            deaf += b"cache_deaf" in line
    if deaf:
        print(f"bench: the web cache went deaf {deaf} times under load", file=sys.stderr)
    if logged < token_result.requests:
        raise BenchError(f"the web process logged {logged} lines for more requests")
    print(
        f"bench: wrk {WARMUP_S}+{DURATION_S} s against the token endpoint, traced", file=sys.stderr
    )
    traced_result = measure(traced_web, script)
    spans = sink_spans(sink)
    print(f"bench: wrk {WARMUP_S}+{DURATION_S} s, traced, {SAMPLED_RATIO} sampled", file=sys.stderr)
    sampled_result = measure(sampled_web, script)
    refreshes = idp.stats()["refresh_requests"]
    if refreshes:
        raise BenchError(f"the benchmark triggered {refreshes} refreshes at the provider")
    return Results(
        bare=bare_result,
        token=median(on),
        traced=traced_result,
        sampled=sampled_result,
        unaudited=median(off),
        audited=audited,
        size=size,
        spans=spans,
    )


def median(results: list[WrkResult]) -> WrkResult:
    """The run with the median throughput."""
    return sorted(results, key=lambda result: result.rps)[len(results) // 2]


def audit_records(url: str, partitions: int = AUDIT_PARTITIONS.default) -> int:
    """How many audit records the web processes wrote (an entry holds one flush's records)."""
    client = SyncRedis.from_url(url)
    total = 0
    try:
        for partition in range(partitions):
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]], client.xrange(Keys().audit(partition))
            )
            total += sum(len(orjson.loads(fields[b"r"])) for _, fields in entries)
    finally:
        client.close()
    return total


def report(results: Results) -> str:
    """The result table."""
    bare, token, traced, size = results.bare, results.token, results.traced, results.size
    sampled, off = results.sampled, results.unaudited
    ratio = token.rps / bare.rps

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    rows = [
        f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s, {ACCOUNTS} accounts, {size}-byte body",
        f"{'':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}",
        f"{'bare aiohttp':<22}{bare.rps:>10.0f}{bare.p50_ms:>10.2f}{bare.p99_ms:>10.2f}",
        f"{'token endpoint':<22}{token.rps:>10.0f}{token.p50_ms:>10.2f}{token.p99_ms:>10.2f}",
        f"{'token, audit off':<22}{off.rps:>10.0f}{off.p50_ms:>10.2f}{off.p99_ms:>10.2f}",
        f"{'token, traced':<22}{traced.rps:>10.0f}{traced.p50_ms:>10.2f}{traced.p99_ms:>10.2f}",
        f"{'token, traced 1 %':<22}{sampled.rps:>10.0f}{sampled.p50_ms:>10.2f}"
        f"{sampled.p99_ms:>10.2f}",
        f"ratio token/bare {ratio:.2f}  (target >= {TARGET_RATIO:.2f})  "
        + verdict(ratio >= TARGET_RATIO),
        f"token p99 {token.p99_ms:.2f} ms  (target < {TARGET_P99_MS:.0f} ms)  "
        + verdict(token.p99_ms < TARGET_P99_MS),
        f"ratio audit on/off {token.rps / off.rps:.2f}  (medians of {AUDIT_ROUNDS} alternated runs"
        f" each; token/bare {ratio:.2f} on, {off.rps / bare.rps:.2f} off; "
        f"{results.audited} audit records written)",
        f"ratio traced/bare {traced.rps / bare.rps:.2f}  (tracing on; the sink received "
        f"{results.spans} spans for {traced.requests} measured + warm-up requests)",
        f"ratio traced 1 %/bare {sampled.rps / bare.rps:.2f}  (OTEL_TRACES_SAMPLER="
        f"parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG={SAMPLED_RATIO})",
    ]
    named = (("bare", bare), ("token", token), ("off", off), ("traced", traced), ("1 %", sampled))
    for name, result in named:
        if result.socket_errors:
            rows.append(f"{name}: socket errors: {result.socket_errors}")
    return "\n".join(rows)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    """Run the benchmark; exit 0 even when a target is missed, non-zero on any setup error."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the measured token run")
    profile: Path | None = parser.parse_args().profile
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with contextlib.ExitStack() as stack:
            results = run(stack, profile)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
