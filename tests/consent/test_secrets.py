"""No secret of the consent flow (code, verifier, tokens, client secret) in logs or answers."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from redis.asyncio import Redis

from service.core import Core
from tests.support.consent import Client, authorize_as, follow, query_of, start_consent
from tests.support.idp import Idp
from tests.support.logs import Lines, logged_lines


@pytest.fixture
def captured_log() -> Iterator[Lines]:
    """Our and the stdlib's log lines, rendered as JSON into a buffer for this test."""
    with logged_lines() as lines:
        yield lines


async def _verifier(core: Core, redis: Redis, consent_url: str, replace: bool) -> str:
    """The flow's PKCE verifier; with `replace`, a wrong one is stored instead."""
    nonce = core.signer.verify(query_of(consent_url)["state"])["n"]
    record = orjson.loads(str(await redis.get(core.keys.state(nonce))))
    verifier = core.cipher.decrypt(record["verifier"], f"state:{nonce}:verifier")
    if replace:
        verifier = f"wrong-{verifier}"
        record["verifier"] = core.cipher.encrypt(verifier, f"state:{nonce}:verifier")
        await redis.set(core.keys.state(nonce), orjson.dumps(record), px=60_000)
    return verifier


async def test_no_secret_in_logs_pages_or_redirects(
    captured_log: Lines,
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
) -> None:
    """A connected account, a refused code and a delete leave no secret in any output."""
    answers: list[str] = []
    secrets = [flow_idp.client_secret]
    for account in ("kept", "refused"):
        consent_url = await start_consent(flow_client, flow_admin, account=account)
        wrong = account == "refused"  # the provider refuses the code for a wrong verifier
        secrets.append(await _verifier(flow_core, redis, consent_url, wrong))
        callback = await authorize_as(flow_idp, consent_url, account)
        secrets.append(query_of(callback)["code"])
        resp = await follow(flow_client, callback)
        assert resp.status == (502 if wrong else 200)
        answers.append(await resp.text() + str(dict(resp.headers)))
    stored = await flow_core.accounts.require("kept")
    secrets += [flow_core.accounts.refresh_token(stored), flow_core.accounts.access_token(stored)]
    for method, path in (("GET", "/v1/account/kept"), ("DELETE", "/v1/account/kept")):
        resp = await flow_client.request(method, path, headers=flow_admin)
        answers.append(await resp.text())
    output = captured_log.text
    assert captured_log.events("consent_saved") and captured_log.events("consent_refused")
    for secret in secrets:
        assert len(secret) >= 8
        assert secret not in output
        assert all(secret not in answer for answer in answers)
