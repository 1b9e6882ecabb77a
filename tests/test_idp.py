"""The test provider's own hooks: answer delays, hung-up clients, token states, its store."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

from service.service_key import JWT_BEARER, assertion, parse_service_key
from tests.support.idp import Idp
from tests.support.polling import eventually_blocking

SCOPE = "openid email offline_access"


@pytest.fixture(scope="module")
def own_idp() -> Iterator[Idp]:
    """A provider of this module's own: no other test's hanging request is in flight there."""
    with Idp.start() as started:
        yield started


@pytest.fixture
def provider(own_idp: Idp) -> Iterator[Idp]:
    """The module's provider, reset (counters, delay, rotation) before and after."""
    own_idp.reset()
    yield own_idp
    own_idp.reset()


def test_delay_window_slows_every_refresh_then_ends(provider: Idp) -> None:
    """During the window each refresh answer waits in [min, max]; clearing it ends that."""
    token = str(provider.mint("delay-user", SCOPE)["refresh_token"])
    until = provider.delay(300, 400, 60_000)
    assert until > time.time() * 1000 + 50_000
    for _ in range(2):
        started = time.monotonic()
        status, body = provider.refresh(token)
        assert status == 200
        assert 0.3 <= time.monotonic() - started < 3.0
        token = str(body["refresh_token"])
    provider.clear_delay()
    started = time.monotonic()
    assert provider.refresh(token)[0] == 200
    assert time.monotonic() - started < 0.3
    stats = provider.stats()
    assert (stats["refresh_ok"], stats["refresh_unheard"], stats["refresh_in_flight"]) == (3, 0, 0)


def test_refresh_completes_after_the_client_hung_up(provider: Idp) -> None:
    """A client that gives up during the delay still has its token rotated, unseen by anyone."""
    token = str(provider.mint("hangup-user", SCOPE)["refresh_token"])
    before = provider.active(token)
    assert before.active and before.active_in_grant == 1
    provider.delay(800, 800, 60_000)
    with pytest.raises(TimeoutError):
        provider.refresh(token, timeout=0.2)  # closes its connection on the timeout
    assert provider.stats()["refresh_in_flight"] == 1, "the provider is still working on it"
    eventually_blocking(
        lambda: provider.stats()["refresh_unheard"] == 1, 10, "the answer into the void"
    )
    assert provider.stats()["refresh_in_flight"] == 0
    after = provider.active(token)
    assert not after.active, "the presented token was used up"
    assert after.grant_id == before.grant_id and after.active_in_grant == 1, "a new one lives"
    provider.clear_delay()
    status, body = provider.refresh(token)  # the client retries with the only token it has
    assert (status, body["error"]) == (400, "invalid_grant")
    assert provider.active(token).active_in_grant == 0, "replay detection revoked the grant"


def test_active_follows_rotation_and_revocation(provider: Idp) -> None:
    """active() is true for the newest token only, and false for all once revoked or unknown."""
    first = str(provider.mint("active-user", SCOPE)["refresh_token"])
    status, body = provider.refresh(first)
    assert status == 200
    second = str(body["refresh_token"])
    states = provider.active_many([first, second, "no-such-token"])
    assert [s.active for s in states] == [False, True, False]
    assert [s.active_in_grant for s in states] == [1, 1, 0]
    assert states[2].grant_id is None
    provider.revoke(second)
    assert provider.active(second).active is False


def test_refresh_lifetime_per_client_and_per_request(provider: Idp) -> None:
    """refresh_token_expires_in comes for the chosen client only, a fault sets one answer's."""
    provider.refresh_lifetime(3600, client_id=provider.client_id)
    first = str(provider.mint("lifetime-user", SCOPE)["refresh_token"])
    status, body = provider.refresh(first)
    assert status == 200 and body["refresh_token_expires_in"] == 3600
    other = provider.mint("lifetime-other", SCOPE, client_id=provider.other_client_id)
    status, body = provider.refresh(
        str(other["refresh_token"]),
        client_id=provider.other_client_id,
        client_secret=provider.other_client_secret,
    )
    assert status == 200 and "refresh_token_expires_in" not in body
    provider.fault("refresh_token_expires_in", value=60)
    status, body = provider.refresh(
        str(body["refresh_token"]),
        client_id=provider.other_client_id,
        client_secret=provider.other_client_secret,
    )
    assert status == 200 and body["refresh_token_expires_in"] == 60
    provider.reset()
    status, body = provider.refresh(str(provider.mint("lifetime-late", SCOPE)["refresh_token"]))
    assert status == 200 and "refresh_token_expires_in" not in body


def test_rotation_can_keep_the_previous_token_usable(provider: Idp) -> None:
    """With retire_rotated false an old refresh token still works; reset restores retiring."""
    provider.retire_rotated(False)
    first = str(provider.mint("keep-user", SCOPE)["refresh_token"])
    assert provider.refresh(first)[0] == 200
    assert provider.active(first).active and provider.active(first).active_in_grant == 2
    assert provider.refresh(first)[0] == 200, "the previous token is accepted again"
    provider.reset()
    second = str(provider.refresh(first)[1]["refresh_token"])
    assert not provider.active(first).active
    assert provider.active(second).active


def test_store_keeps_more_than_a_thousand_entries(provider: Idp) -> None:
    """400 grants (about 1,200 stored entries): the first grant's token still refreshes."""
    tokens = [str(provider.mint(f"many-{i}", SCOPE)["refresh_token"]) for i in range(400)]
    assert all(state.active for state in provider.active_many(tokens))
    assert provider.refresh(tokens[0])[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        {"min_ms": -1, "max_ms": 5, "for_ms": 10},
        {"min_ms": 9, "max_ms": 5, "for_ms": 10},
        {"min_ms": 1, "max_ms": 5, "for_ms": 1.5},
        {"ms": 5},
    ],
)
def test_bad_delay_is_refused(provider: Idp, body: dict[str, object]) -> None:
    """A malformed delay window is answered 400 and changes nothing."""
    with pytest.raises(RuntimeError, match="answered 400"):
        provider._hook("POST", "delay", body)


def test_client_credentials_grant(provider: Idp) -> None:
    """client_credentials: one `<resource>/.default` with the right secret; else refused."""
    form = {
        "grant_type": "client_credentials",
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "scope": "https://graph.microsoft.com/.default",
    }
    status, _, body = provider.token_request(form)
    answer = orjson.loads(body)
    assert status == 200 and answer["token_type"] == "Bearer" and "refresh_token" not in answer
    status, _, body = provider.token_request({**form, "client_secret": "wrong"})
    assert status == 401 and orjson.loads(body)["error"] == "invalid_client"
    status, _, body = provider.token_request({**form, "scope": "mail.read"})
    assert status == 400 and orjson.loads(body)["error"] == "invalid_scope"
    assert provider.service_stats()["client_credentials_ok"] == 1


def test_jwt_bearer_checks_times_scopes_and_delegation(provider: Idp) -> None:
    """An old assertion, scopes beyond the delegation and a withdrawn subject are refused."""
    key_file = provider.service_account(scopes="https://mail.google.com/")
    key = parse_service_key(orjson.dumps(key_file).decode())
    now_s = int(time.time())

    def grant(sub: str, scope: str, at_s: int) -> tuple[int, dict[str, str]]:
        signed = assertion(
            key,
            issuer=str(key_file["client_email"]),
            subject=sub,
            scopes=[scope],
            audience=provider.token_url,
            now_s=at_s,
        )
        status, _, body = provider.token_request({"grant_type": JWT_BEARER, "assertion": signed})
        return status, orjson.loads(body)

    assert grant("a@example.test", "https://mail.google.com/", now_s)[0] == 200
    old = grant("a@example.test", "https://mail.google.com/", now_s - 7200)[1]
    assert old["error"] == "invalid_grant" and old["error_description"].startswith("Invalid JWT")
    wide = grant("a@example.test", "https://www.googleapis.com/auth/gmail.modify", now_s)[1]
    assert wide["error"] == "unauthorized_client"
    provider.delegate(str(key_file["client_email"]), "a@example.test", allowed=False)
    gone = grant("a@example.test", "https://mail.google.com/", now_s)[1]
    assert gone == {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
    assert grant("b@example.test", "https://mail.google.com/", now_s)[0] == 200


OUTLOOK = "https://outlook.office.com"
GRAPH = "https://graph.microsoft.com"
CONSENTED = f"{OUTLOOK}/IMAP.AccessAsUser.All {OUTLOOK}/SMTP.Send {GRAPH}/Mail.Read"


def test_a_refresh_naming_one_resource_gets_a_token_for_it(provider: Idp) -> None:
    """Microsoft: `scope` of one resource yields a token with that audience, and rotates."""
    token = str(provider.mint("res-user", SCOPE, resource_scopes=CONSENTED)["refresh_token"])
    status, outlook = provider.refresh(
        token, scope=f"{OUTLOOK}/IMAP.AccessAsUser.All offline_access"
    )
    assert status == 200, outlook
    assert outlook["scope"] == f"{OUTLOOK}/IMAP.AccessAsUser.All"
    assert provider.audience(str(outlook["access_token"])) == (OUTLOOK, outlook["scope"])
    assert outlook["refresh_token"] != token and not provider.active(token).active
    status, graph = provider.refresh(
        str(outlook["refresh_token"]), scope="Mail.Read offline_access"
    )
    assert status == 200, graph
    assert graph["scope"] == "Mail.Read"  # Graph's scopes come without their prefix
    assert provider.audience(str(graph["access_token"]))[0] == GRAPH
    status, everything = provider.refresh(str(graph["refresh_token"]), scope=f"{OUTLOOK}/.default")
    assert status == 200, everything
    assert everything["scope"] == f"{OUTLOOK}/IMAP.AccessAsUser.All {OUTLOOK}/SMTP.Send"


def test_two_resources_in_one_refresh_are_refused(provider: Idp) -> None:
    """Microsoft: scopes of two resources in one request are AADSTS70011, token kept."""
    token = str(provider.mint("mixed-user", SCOPE, resource_scopes=CONSENTED)["refresh_token"])
    status, body = provider.refresh(token, scope=f"{OUTLOOK}/SMTP.Send {GRAPH}/Mail.Read")
    assert status == 400 and body["error"] == "invalid_scope", body
    assert body["error_codes"] == [70011] and "AADSTS70011" in str(body["error_description"])
    assert provider.active(token).active


def test_a_scope_not_consented_is_refused(provider: Idp) -> None:
    """Microsoft: an unconsented scope, or .default of an unconsented resource, is AADSTS65001."""
    token = str(provider.mint("consent-user", SCOPE, resource_scopes=CONSENTED)["refresh_token"])
    for scope in (f"{GRAPH}/Calendars.Read", "https://api.example/.default"):
        status, body = provider.refresh(token, scope=scope)
        assert status == 400 and body["error"] == "invalid_grant", body
        assert body["error_codes"] == [65001] and body["suberror"] == "consent_required"
    assert provider.active(token).active
    assert provider.stats()["refresh_replayed"] == 0


def test_a_used_refresh_token_is_counted_as_replayed(provider: Idp) -> None:
    """Presenting a refresh token a refresh already used counts in refresh_replayed."""
    token = str(provider.mint("replay-user", SCOPE)["refresh_token"])
    assert provider.refresh(token)[0] == 200
    assert provider.refresh(token)[0] == 400
    assert provider.stats()["refresh_replayed"] == 1


def test_a_narrower_scope_downscopes_an_ordinary_grant(provider: Idp) -> None:
    """Without a Microsoft consent, `scope` is RFC 6749's: a subset narrows the token."""
    token = str(provider.mint("narrow-user", f"{SCOPE} mail.read")["refresh_token"])
    status, body = provider.refresh(token, scope="openid mail.read")
    assert status == 200, body
    assert sorted(str(body["scope"]).split()) == ["mail.read", "openid"]
    assert provider.audience(str(body["access_token"])) == (None, None)
