"""Every exchange of EmailEngine's recorded transcript replayed against tokenbroker, in order.

Each request is sent as recorded (its app ids, account ids, token ids and API tokens mapped
to the ones this run made) and our answer must have the recorded status and JSON shape.
The allowed differences below are reviewed: each names the section of docs/emailengine.md
that gives its reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.core import Core
from service.web.appkeys import CORE
from tests.conftest import make_token
from tests.support.ee_api_transcript import entries, shape_differences

Client = TestClient[web.Request, web.Application]
NOWHERE = "http://127.0.0.1:9/token"  # a closed port: a renewal fails at once, as offline
DOC = "docs/emailengine.md"
# Sections of docs/emailengine.md.
ACCOUNTS = "Accounts, account search, API tokens in the query, error bodies"
APPS = "OAuth2 apps, provider types and scopes: deliberate differences"
LINK = "The hosted link (`POST /v1/authentication/form`)"
TOKENS = "API tokens over HTTP (`/v1/tokens`, deprecated `/v1/token`)"
SETTINGS = "Settings (`GET /v1/settings?key=true`, `POST /v1/settings`)"
TOKEN_ENDPOINT = "The token endpoint (`GET /v1/account/{id}/oauth-token`)"
# name -> (our status, the section of docs/emailengine.md giving the reason)
STATUS: dict[str, tuple[int, str]] = {
    # notifyHeaders shape message webhooks, never sent here: only [] is taken
    "settings.post": (400, SETTINGS),
    # service-account apps: no interactive consent
    "account.authorize.outlookService-refused": (501, APPS),
    "account.authorize.gmailService": (501, APPS),
    # deleting an app deletes its accounts (EmailEngine leaves them serving tokens)
    "account.get.orphan-after-app-delete": (404, APPS),
    "account.get.a-orphan-1": (404, APPS),
    "oauth-token.orphan-app-deleted": (404, APPS),
    # OAuth2 accounts only: no IMAP/SMTP password account
    "account.create.imap-password": (400, ACCOUNTS),
    "account.get.a-imap-password-1": (404, ACCOUNTS),
    "oauth-token.non-oauth-account": (404, ACCOUNTS),
    # an unknown app is our stable 404 AppNotFound
    "account.import.error.unknown-app": (404, ACCOUNTS),
    "account.update.error.unknown-app": (404, ACCOUNTS),
    # a provider that cannot be reached is 503 ProviderUnavailable (retry), not a 403
    "oauth-token.refresh-fails.gmail-refresh-only": (503, TOKEN_ENDPOINT),
    "oauth-token.refresh-fails.outlook-delegated-refresh-only": (503, TOKEN_ENDPOINT),
    "oauth-token.refresh-fails.mailru-expired": (503, TOKEN_ENDPOINT),
    "oauth-token.refresh-fails.gmailService": (503, TOKEN_ENDPOINT),
    # the hosted link: OAuth2 apps only, and no link a service-account app cannot use
    "authentication-form.imap-type": (400, LINK),
    "authentication-form.service-app-type": (501, LINK),
    # no `permissions` on API tokens: the narrowed token cannot be made (a scope-api one
    # stands in for it), an unbound token needs none
    "tokens.create.narrowed-instance": (400, TOKENS),
    "tokens.create.error.instance-without-permissions": (200, TOKENS),
    "tokens.get.by-id": (404, TOKENS),
    "narrow-token.oauth2.list": (200, TOKENS),
    "narrow-token.after-delete": (200, TOKENS),
}
# name -> (JSON paths not compared, the section giving the reason)
SHAPE: dict[str, tuple[frozenset[str], str]] = {
    # the recorded settings.post was refused (notifyHeaders), so these were not set
    "settings.get.after": (frozenset({"webhooks", "webhooksCustomHeaders"}), SETTINGS),
    "settings.get.final": (frozenset({"webhooksCustomHeaders"}), SETTINGS),
    # a scope, not EmailEngine's permission groups, refused it
    "narrow-token.oauth-token": (frozenset({"requiredPermission"}), TOKENS),
}
# Paths never compared: values that come from EmailEngine's IMAP workers, client IPs.
NEVER = frozenset(
    {"counters.events", "lastError", "accounts[].counters.events", "accounts[].lastError"}
    | {"tokens[].access.time", "tokens[].access.ip", "tokens[].remoteAddress"}
)
RECORDED_URL = "http://127.0.0.1:17301"  # EmailEngine's serviceUrl in the recording
PHASE_2 = "oauth2.list.default"  # EmailEngine restarted with the token endpoint enabled


class Replay:
    """The ids of this run for the recorded ones, and the API tokens by label."""

    def __init__(self, client: Client, root: str) -> None:
        self.client, self.tokens = client, {"root": root}
        self.ids = {RECORDED_URL: client.app[CORE].config.base_url}

    def mapped(self, text: str) -> str:
        """`text` with the recorded ids replaced by ours."""
        for theirs, ours in self.ids.items():
            text = text.replace(theirs, ours)
        return text

    def body(self, recorded: dict[str, Any]) -> Any:
        """The recorded request body, ids mapped; app creates keep EmailEngine's id."""
        body = recorded["requestBody"]
        name = recorded["name"]
        if name.startswith("oauth2.create.") and recorded["status"] == 200:
            body = {**body, "id": recorded["responseBody"]["id"]}  # keep EmailEngine's ids
            if body.get("provider") in ("gmail", "outlook", "mailRu"):
                body["tokenUrl"] = NOWHERE
        if isinstance(body, (dict, list)):
            return orjson.loads(self.mapped(orjson.dumps(body).decode()))
        return body

    def headers(self, recorded: dict[str, Any]) -> dict[str, str]:
        """The recorded Authorization with the labelled token of this run."""
        sent = recorded["requestHeaders"].get("Authorization", "")
        label = re.fullmatch(r"Bearer <redacted: (.+) token>", sent)
        if label is None:
            return {}
        token = self.tokens.get(label.group(1), "0" * 64)
        return {"Authorization": f"Bearer {token}"}

    async def send(self, recorded: dict[str, Any]) -> tuple[int, Any]:
        """Send the recorded request; our status and JSON body."""
        query = {k: self.mapped(v) for k, v in recorded["query"].items()}
        resp = await self.client.request(
            recorded["method"],
            self.mapped(recorded["path"]),
            params=query,
            json=self.body(recorded),
            headers=self.headers(recorded),
        )
        return resp.status, await resp.json()

    def learn(self, recorded: dict[str, Any], ours: Any) -> None:
        """Map the ids and tokens EmailEngine generated to ours."""
        theirs = recorded["responseBody"]
        if not isinstance(theirs, dict) or not isinstance(ours, dict):
            return
        generated = recorded["path"] == "/v1/account" and not recorded["requestBody"].get("account")
        if generated and "account" in theirs and "account" in ours:
            self.ids[theirs["account"]] = ours["account"]
        if "token" in theirs and "token" in ours:
            self.ids[theirs["token"]] = ours["token"]
            self.ids[theirs["id"]] = ours["id"]
            label = "account:" + str(recorded["requestBody"].get("account"))
            self.tokens.setdefault(label, ours["token"])


async def test_whole_transcript(client: Client, core: Core) -> None:
    """Each recorded request gets the recorded status and shape, or a listed difference."""
    replay = Replay(client, await make_token(core, "*"))
    await core.settings.update({"allowedRedirectUrls": ["https://app.example.com/"]})
    replay.tokens["narrow"] = await make_token(core, "api")
    found: list[str] = []
    for name, recorded in entries().items():
        if name == PHASE_2:
            await core.settings.update({"enableOAuthTokensApi": True})
        status, body = await replay.send(recorded)
        replay.learn(recorded, body)
        want = STATUS.get(name, (recorded["status"], ""))[0]
        if status != want:
            found.append(f"{name}: status {status}, recorded {recorded['status']}: {body}")
            continue
        skip = NEVER | SHAPE.get(name, (frozenset(), ""))[0]
        if status == recorded["status"]:
            diffs = shape_differences(recorded["responseBody"], body, skip=skip)
            found += [f"{name}: {d}" for d in diffs]
    assert found == [], "\n".join(found)


def test_differences_point_at_the_docs() -> None:
    """Every allowed difference names a section heading of docs/emailengine.md."""
    doc = (Path(__file__).resolve().parents[2] / DOC).read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in doc.splitlines() if line.startswith("#")}
    for name, (_, section) in {**STATUS, **SHAPE}.items():
        assert section in headings, (name, section)
        assert name in entries(), name
