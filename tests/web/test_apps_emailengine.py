"""/v1/oauth2 against EmailEngine's recorded answers (transcript A, `oauth2.*` entries)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.ee_transcript import entry, named, same_shape

Client = TestClient[web.Request, web.Application]
CREATES = [n for n in named("oauth2.create.") if ".error." not in n and "transient" not in n]
# Reviewed differences, each listed in docs/emailengine.md:
# - `name` is optional here (the id stands in), so an empty body names only `provider`;
# - error bodies carry `code` and `details` in place of Joi's `fields` list.


async def replay(
    client: Client, headers: dict[str, str], name: str, extra: dict[str, Any] | None = None
) -> Any:
    """Send the recorded request `name`, with `extra` fields added to its body."""
    recorded = entry(name)
    body = recorded["requestBody"]
    if extra:
        body = {**body, **extra}
    path = recorded["path"]
    resp = await client.request(
        recorded["method"],
        path,
        params=recorded["query"] or None,
        json=body,
        headers=headers,
    )
    return resp.status, await resp.json()


async def create_all(client: Client, headers: dict[str, str]) -> list[str]:
    """Create the 7 recorded apps with EmailEngine's ids (a given id is kept); return them."""
    ids: list[str] = []
    for name in CREATES:
        recorded = entry(name)
        given = {"id": recorded["responseBody"]["id"]}
        status, body = await replay(client, headers, name, given)
        assert status == recorded["status"], (name, body)
        assert same_shape(body, recorded["responseBody"]) == [], name
        assert body["id"] == given["id"]
        ids.append(body["id"])
    return ids


async def test_create_get_list_like_emailengine(client: Client, admin: dict[str, str]) -> None:
    """Creates answer {id, created}; get and list pages have EmailEngine's keys and types."""
    ids = await create_all(client, admin)
    for name in named("oauth2.get."):
        recorded = entry(name)
        theirs = recorded["path"].rsplit("/", 1)[-1]
        if theirs not in ids and recorded["status"] == 200:
            continue  # an app created later (transient ones)
        status, body = await replay(client, admin, name)
        assert status == recorded["status"], (name, body)
        if status == 200 and "after-update" not in name:
            want = recorded["responseBody"]
            assert same_shape(body, want) == [], name
            same = ("provider", "enabled", "includeInListing", "authority", "cloud")
            assert {k: body.get(k) for k in same} == {k: want.get(k) for k in same}, name
    for name in named("oauth2.list.page"):
        recorded = entry(name)
        status, body = await replay(client, admin, name)
        want = recorded["responseBody"]
        assert status == 200 and same_shape(body, want) == [], name
        assert (body["total"], body["pages"], body["page"]) == (7, want["pages"], want["page"])
        assert [app["id"] for app in body["apps"]] == [app["id"] for app in want["apps"]]


async def test_update_and_delete_like_emailengine(client: Client, admin: dict[str, str]) -> None:
    """PUT answers {id, updated}; DELETE {id, deleted, accounts}, deleted false when missing."""
    await create_all(client, admin)
    for name in named("oauth2.update."):
        recorded = entry(name)
        status, body = await replay(client, admin, name)
        assert status == recorded["status"], (name, body)
        if status == 200:
            assert body == {**recorded["responseBody"], "id": body["id"]}
    shown = await (await client.get("/v1/oauth2/AAABoknEgWkAAAAD", headers=admin)).json()
    assert shown["extraScopes"] == ["User.Read", "Calendars.Read", "Contacts.Read"]
    transient = {"id": "AAABoknFTNAAAAAI"}
    await replay(client, admin, "oauth2.create.transient-empty", transient)
    status, body = await replay(client, admin, "oauth2.delete.without-accounts")
    assert (status, body) == (200, entry("oauth2.delete.without-accounts")["responseBody"])
    status, body = await replay(client, admin, "oauth2.delete.missing")
    assert (status, body) == (200, entry("oauth2.delete.missing")["responseBody"])


@pytest.mark.parametrize(
    "name",
    [*named("oauth2.create.error."), *named("oauth2.list.error."), *named("oauth2.update.error.")],
)
async def test_refusals_like_emailengine(client: Client, admin: dict[str, str], name: str) -> None:
    """Each recorded refusal is a 400 naming one of the fields EmailEngine names."""
    if ".update." in name:
        await create_all(client, admin)
    status, body = await replay(client, admin, name)
    assert status == 400, (name, body)
    theirs = {field["key"] for field in entry(name)["responseBody"]["fields"]}
    details = body.get("details", {})
    ours = {details["field"]} if "field" in details else set(details.get("fields", []))
    assert ours and ours <= theirs, (name, body)
