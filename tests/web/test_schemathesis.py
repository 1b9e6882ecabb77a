"""Schemathesis fuzzes every operation of a real `tokenbroker web` process against /openapi.json.

The web process runs as an operator starts it (the console script, configured by environment
variables) on the session's redis-server under a key prefix of its own, with the real OAuth2
provider behind its app. Generation is derandomized and capped, so every run sends the same
requests and the whole test takes seconds.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, GenerationMode, Response
from schemathesis import checks as core_checks
from schemathesis.core.result import Ok
from schemathesis.specs.openapi import checks as openapi_checks

import service
import workers
from service.clock import SystemClock, iso
from service.store.embedded import RedisProcess, free_port
from tests.conftest import TEST_SECRET
from tests.support.idp import Idp
from tests.support.polling import eventually_blocking

Operation = APIOperation[Any, Any, Any, Any]
TOKENBROKER = Path(sys.executable).parent / "tokenbroker"
START_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0
MAX_EXAMPLES = 50  # per operation and generation mode: <2000 requests, 15-35 s on 2 cores
SCOPE = "openid email offline_access mail.read"

APP = "fuzz-idp"  # the oidc app at the test provider that owns the accounts
SCRATCH_APP = "fuzz-scratch"  # an oidc app without accounts, for PUT and DELETE to change
ACCOUNT_LIFETIMES_S = {
    "fuzz-alice": 3600,  # fresh: oauth-token answers from the store (cached)
    "fuzz-bob": 900,  # minValidity above 900 s makes oauth-token refresh it at the provider
}

# The checks: no 5xx (Redis and the provider are up, so not even 503), a documented
# status, content type and headers, and a body that matches the documented schema.
CONFORMANCE = [
    core_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]
# Invalid data (negative mode) is refused with a 4xx. 413 counts as a refusal: a body made
# invalid by an over-long string may also exceed the 64 KiB body limit (PayloadTooLarge).
NEGATIVE_REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "429"]
# Valid data (positive mode) is accepted, or refused only for the state it meets (the check's
# default: 401, 403, 404 unknown id, 409 conflict); a 400 means the schema promised too much.
# Left out where what is valid depends on stored state that no schema can describe:
POSITIVE_ACCEPTANCE_EXCEPT = {
    # 400 to "provider cannot change", to authority/cloud on an app that is not outlook, and
    # to `clientId: null` ("cannot be removed"): all depend on the stored app.
    "PUT /v1/oauth2/{app}",
    # 400 "app is required" unless the account exists or there is exactly one app.
    "POST /v1/authentication/form",
    # The link and the OAuth state are signed or single-use by design: generated ones are
    # always refused (InvalidLink, InvalidState), which is the point.
    "GET /oauth/start",
    "POST /oauth/start",
    "GET /oauth/callback",
    "GET /oauth",  # EmailEngine's callback path: the same handler as /oauth/callback
    # serviceUrl must equal the process's BASE_URL; webhooks and header names go through
    # the outbound-URL and header rules that the schema does not spell out.
    "POST /v1/settings",
    # A partial oauth2 merges over the stored grant; a full one needs the stored account's app.
    "PUT /v1/account/{account}",
}
# Elsewhere this refusal of valid data is expected too: a redirectUrl must be on BASE_URL or
# on the settings' allow-list (POST /v1/account with `authorize: true`).
# And the content of a client certificate: it must parse and its key must be the certificate's,
# which no schema can say (InvalidCertificate).
# And which resources and scopes a token may be asked for: resources are an outlook app's
# only, scopes must be among the account's consented ones, of one resource.
STATEFUL_REFUSALS = {"RedirectUrlNotAllowed", "InvalidCertificate"}
STATEFUL_REFUSALS |= {"InvalidResource", "ScopeNotConsented", "MixedResources"}
# And these fields' refusals: whether an import needs a refresh token depends on the stored
# app's type (a service-account app's accounts have none), and a serviceKey must be a real
# private key, which no schema can say.
STATEFUL_FIELDS = {"refreshToken", "serviceKey"}
# Settings PUTs run last: they may disable the oauth-token endpoint, which only the CLI (not
# the JSON API) can enable again, and every operation before them should find it enabled.
LAST = ("PUT /v1/settings",)


@dataclass(frozen=True)
class WebProcess:
    """A running `tokenbroker web` and what its callers need."""

    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30, *, skip: str | None = None) -> str:
        """The last lines of the process's output (without those that contain `skip`)."""
        kept = [
            line
            for line in self.log.read_text(errors="replace").split("\n")
            if skip is None or skip not in line
        ]
        return "\n".join(kept[-lines:])


def web_env(redis_url: str) -> dict[str, str]:
    """The environment of the web process and of the CLI: key prefix `fuzz`, overrides allowed."""
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("TOKENBROKER_")
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "TOKENBROKER_REDIS_PREFIX": "fuzz",
            "TOKENBROKER_SECRET": base64.b64encode(TEST_SECRET).decode(),
            "TOKENBROKER_ALLOW_PRIVATE_URLS": "true",
            "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES": "true",
            "TOKENBROKER_ENABLE_OAUTH_TOKENS_API": "true",
            "TOKENBROKER_LOG_FORMAT": "json",
        }
    )
    return env


def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run `tokenbroker ARGS` as an operator would; return its stdout."""
    done = subprocess.run(
        [str(TOKENBROKER), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"tokenbroker {' '.join(args)}: {done.stderr}"
    return done.stdout


def wait_healthy(web: WebProcess) -> None:
    """Poll /health until it answers 200; fail when the process dies or START_TIMEOUT_S passes."""

    def healthy() -> bool:
        if web.process.poll() is not None:
            pytest.fail(f"tokenbroker web exited ({web.process.returncode}):\n{web.tail()}")
        try:
            return requests.get(f"{web.base_url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    eventually_blocking(
        healthy, START_TIMEOUT_S, "tokenbroker web healthy", every_s=0.05, diagnostics=web.tail
    )


@pytest.fixture
def web_process(redis_server: RedisProcess, tmp_path: Path) -> Iterator[WebProcess]:
    """`tokenbroker web --port P` on the test Redis (prefix `fuzz`); stopped after the test."""
    port = free_port()
    env = web_env(redis_server.url)
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(TOKENBROKER), "web", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    web = WebProcess(f"http://127.0.0.1:{port}", env, process, log)
    try:
        wait_healthy(web)
        yield web
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Api:
    """The web process's JSON API with an admin token, for the test's own set-up requests."""

    def __init__(self, web: WebProcess, token: str, idp: Idp) -> None:
        self.base_url = web.base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.idp = idp
        self.session = requests.Session()

    def request(self, method: str, path: str, body: Any = None) -> requests.Response:
        """Send one request with the admin token."""
        return self.session.request(
            method, self.base_url + path, json=body, headers=self.headers, timeout=HTTP_TIMEOUT_S
        )

    def ensure_app(self, app_id: str) -> None:
        """Create the oidc app `app_id` at the test provider, or put back its fields."""
        idp = self.idp
        body = {
            "provider": "oidc",
            "clientId": idp.client_id,
            "clientSecret": idp.client_secret,
            "issuer": idp.issuer,
            "tokenUrl": idp.token_url,
            "authorizationUrl": idp.authorization_url,
            "revocationUrl": idp.revocation_url,
            "additionalScopes": ["mail.read"],
        }
        if self.request("GET", f"/v1/oauth2/{app_id}").status_code == 404:
            resp = self.request("POST", "/v1/oauth2", {"id": app_id, **body})
            assert resp.status_code == 200, resp.text
        elif app_id == SCRATCH_APP:  # it has no accounts, so every field may change back
            fields = {k: v for k, v in body.items() if k != "provider"}  # fixed at creation
            resp = self.request("PUT", f"/v1/oauth2/{app_id}", fields)
            assert resp.status_code == 200, resp.text

    def import_account(self, account: str, lifetime_s: int) -> None:
        """Import (or re-import) `account` with tokens minted at the provider."""
        minted = self.idp.mint(f"{account}-user", SCOPE)
        oauth2 = {
            "provider": APP,
            "auth": {"user": f"{account}@example.test"},
            "refreshToken": minted["refresh_token"],
            "accessToken": minted["access_token"],
            "expires": iso(SystemClock().now_ms() + lifetime_s * 1000),
        }
        resp = self.request("POST", "/v1/account", {"account": account, "oauth2": oauth2})
        assert resp.status_code == 200, resp.text

    def reset(self) -> None:
        """Bring back the state each operation is fuzzed from: both apps, live accounts."""
        self.ensure_app(APP)
        self.ensure_app(SCRATCH_APP)
        for account, lifetime_s in ACCOUNT_LIFETIMES_S.items():
            self.import_account(account, lifetime_s)


@pytest.fixture
def api(web_process: WebProcess, idp: Idp, tmp_path: Path) -> Iterator[Api]:
    """The admin API: a `*` token made with the CLI, the apps and the accounts.

    Other tests FLUSHALL the shared Redis when they start, so all of it is made here, right
    before fuzzing, under the web process's own prefix.
    """
    token = cli(web_process.env, tmp_path, "token", "create", "--scope", "*")
    api = Api(web_process, token.strip().splitlines()[-1], idp)
    api.reset()
    yield api
    api.session.close()


def import_project_modules() -> None:
    """Import every module of service/ and workers/ (but not a `__main__`).

    Hypothesis mixes the string and number literals of the project's imported modules into the
    data it generates (so editing a literal in service/ may change the requests); with all of
    them imported, the requests are the same whether this file runs alone or after the rest of
    the suite.
    """
    for package in (service, workers):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):
                importlib.import_module(module.name)


def strategy_for(
    operation: Operation, mode: GenerationMode, headers: dict[str, str]
) -> st.SearchStrategy[Any]:
    """Cases for one operation, each with the admin token.

    In positive mode some cases also name the ids that exist, since generated ids are almost
    never known and would only ever reach the 404 branch.
    """
    strategy: st.SearchStrategy[Any] = operation.as_strategy(generation_mode=mode, headers=headers)
    if mode != GenerationMode.POSITIVE:
        return strategy
    names = {param.name for param in operation.path_parameters}
    known: list[dict[str, str]] = []
    if "account" in names:
        known = [{"account": account} for account in ACCOUNT_LIFETIMES_S]
    elif "app" in names:
        known = [{"app": app} for app in (APP, SCRATCH_APP)]
    strategies = [strategy]
    strategies += [operation.as_strategy(path_parameters=p, headers=headers) for p in known]
    if operation.label == "POST /v1/account":  # an import names its app in the body
        strategies.append(strategy.map(with_known_app))
    return st.one_of(strategies)


def with_known_app(case: Any) -> Any:
    """The case with `oauth2.provider` set to the app that exists."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("oauth2"), dict):
        case.body = {**body, "oauth2": {**body["oauth2"], "provider": APP}}
    return case


def modes_of(operation: Operation) -> list[GenerationMode]:
    """Positive data for every operation; negative data where there is an input to break."""
    if operation.path_parameters or operation.query or operation.body:
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def checks_of(operation: Operation, mode: GenerationMode) -> list[Any]:
    """The checks each response of `operation` must pass in `mode`."""
    if mode == GenerationMode.NEGATIVE:
        return [*CONFORMANCE, openapi_checks.negative_data_rejection]
    if operation.label in POSITIVE_ACCEPTANCE_EXCEPT:
        return CONFORMANCE
    return [*CONFORMANCE, positive_data_acceptance]


def positive_data_acceptance(ctx: Any, response: Response, case: Any) -> bool | None:
    """Schemathesis's positive_data_acceptance, but a STATEFUL_REFUSALS code is no failure."""
    if response.status_code == 400:
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and body.get("code") in STATEFUL_REFUSALS:
                return None
            details = body.get("details") if isinstance(body, dict) else None
            if isinstance(details, dict) and details.get("field") in STATEFUL_FIELDS:
                return None
    result: bool | None = openapi_checks.positive_data_acceptance(ctx, response, case)
    return result


def fuzz(
    operation: Operation, mode: GenerationMode, headers: dict[str, str], session: requests.Session
) -> None:
    """Run the capped, derandomized Hypothesis search over one operation in one mode."""
    checks = checks_of(operation, mode)

    @settings(
        derandomize=True,
        database=None,
        max_examples=MAX_EXAMPLES,
        deadline=None,
        # Generated cases are large and filtered by schemathesis; the server is the subject here.
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy_for(operation, mode, headers))
    def run(case: Any) -> None:
        case.call_and_validate(session=session, checks=checks)

    run()


@pytest.mark.timeout(180)
def test_fuzz_every_operation(api: Api, web_process: WebProcess) -> None:
    """Generated valid and invalid requests to every operation get documented, valid answers."""
    import_project_modules()
    config = schemathesis.Config.from_dict(
        {
            "checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_REFUSALS}},
            # Show failing requests whole: the tokens are this test's own, on loopback.
            "output": {"sanitization": {"enabled": False}},
        }
    )
    url = f"{web_process.base_url}/openapi.json"
    schema = schemathesis.openapi.from_url(url, config=config, timeout=HTTP_TIMEOUT_S)
    schema.config.update(base_url=web_process.base_url)
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            pytest.fail(f"/openapi.json has an operation schemathesis cannot use: {result.err()}")
        operations.append(result.ok())
    operations.sort(key=lambda op: op.label in LAST)
    document = requests.get(url, timeout=HTTP_TIMEOUT_S).json()
    documented = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    # Schemathesis leaves out the operation that serves the schema it loaded (GET /openapi.json
    # has no input to fuzz anyway); every other documented operation is fuzzed.
    assert {op.label for op in operations} == documented - {"GET /openapi.json"}
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            for mode in modes_of(operation):
                # Fresh state per operation and mode: DELETEs and PUTs of one run do not leave
                # the next without its accounts or apps (and an import may replace a token).
                api.reset()
                try:
                    fuzz(operation, mode, api.headers, session)
                except (Exception, BaseExceptionGroup) as exc:
                    where = f"{operation.label} ({mode.value} data)"
                    failures.append(f"{where}: {type(exc).__name__}: {exc}")
    # The web process's own log lines (errors with tracebacks), without one line per request.
    log = web_process.tail(40, skip='"event":"request"')
    assert not failures, "\n\n".join([*failures, f"web process log, requests left out:\n{log}"])
