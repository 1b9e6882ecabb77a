"""Resolving a token endpoint's resource/scopes request: scopes sent, audience, slot, errors."""

from __future__ import annotations

import pytest

from service import errors
from service.providers import default_scopes
from service.resources import resolve, resource_name, valid_resource_name

GRAPH = "https://graph.microsoft.com"
OUTLOOK = "https://outlook.office.com"


def _outlook(cloud: str = "global") -> list[str]:
    return default_scopes("outlook", "imap", cloud, [f"https://{_graph(cloud)}/Mail.Read"])


def _graph(cloud: str) -> str:
    return {"global": "graph.microsoft.com", "gcc-high": "graph.microsoft.us"}[cloud]


def test_outlook_and_graph_ask_their_own_scopes_with_offline_access() -> None:
    """Each resource asks only its consented scopes (+ offline_access), one slot each."""
    outlook = resolve("outlook", "global", _outlook(), "outlook", None)
    graph = resolve("outlook", "global", _outlook(), "graph", None)
    assert outlook.sent == f"{OUTLOOK}/IMAP.AccessAsUser.All {OUTLOOK}/SMTP.Send offline_access"
    assert graph.sent == f"{GRAPH}/Mail.Read offline_access"
    assert (outlook.name, graph.name, graph.audience) == ("outlook", "graph", GRAPH)
    assert outlook.slot != graph.slot


def test_national_clouds_name_their_own_hosts() -> None:
    """In gcc-high, outlook and graph are the US Government hosts (docs/microsoft-clouds.md)."""
    graph = resolve("outlook", "gcc-high", _outlook("gcc-high"), "graph", None)
    outlook = resolve("outlook", "gcc-high", _outlook("gcc-high"), "outlook", None)
    assert graph.audience == "https://graph.microsoft.us"
    assert outlook.sent.startswith("https://outlook.office365.us/IMAP.AccessAsUser.All ")


def test_scopes_pick_consented_ones_in_their_stored_form() -> None:
    """A bare Graph scope matches its prefixed consent (case aside); the slot is the resource's."""
    asked = resolve("outlook", "global", _outlook(), None, "mail.read")
    assert asked.sent == f"{GRAPH}/Mail.Read offline_access" and asked.name == "graph"
    assert asked.slot == resolve("outlook", "global", _outlook(), "graph", None).slot


def test_an_unconsented_audience_asks_dot_default() -> None:
    """An audience URI without consented scopes asks `.default`: the provider decides."""
    api = resolve("outlook", "global", _outlook(), "api://my-api/", None)
    assert api.sent == "api://my-api/.default offline_access" and api.name == "api://my-api"


@pytest.mark.parametrize(
    ("resource", "scopes", "error"),
    [
        ("sharepoint", None, errors.InvalidResource),
        ("http://plain.example", None, errors.InvalidResource),
        (None, f"{GRAPH}/Calendars.Read", errors.ScopeNotConsented),
        (None, "offline_access", errors.ScopeNotConsented),
        (None, f"{GRAPH}/Mail.Read {OUTLOOK}/SMTP.Send", errors.MixedResources),
        ("outlook", "Mail.Read", errors.MixedResources),
    ],
)
def test_bad_requests_are_refused(
    resource: str | None, scopes: str | None, error: type[errors.ApiError]
) -> None:
    """Unknown names, unconsented scopes and two resources are refused before any call."""
    with pytest.raises(error):
        resolve("outlook", "global", _outlook(), resource, scopes)


def test_google_scopes_narrow_and_resources_are_refused() -> None:
    """A gmail app narrows to a subset of its scopes; resources and other types are 400."""
    consented = default_scopes("gmail", "api")
    narrowed = resolve("gmail", "global", consented, None, "email")
    assert narrowed.sent == "email" and narrowed.name == "default"
    with pytest.raises(errors.InvalidResource):
        resolve("gmail", "global", consented, "graph", None)
    with pytest.raises(errors.InvalidResource):
        resolve("mailRu", "global", ["userinfo"], None, "userinfo")
    with pytest.raises(errors.ScopeNotConsented):
        resolve("gmail", "global", consented, None, "https://www.googleapis.com/auth/drive")


def test_names_an_api_token_may_be_limited_to() -> None:
    """default, outlook, graph and audience URIs; nothing else."""
    assert all(map(valid_resource_name, ["default", "outlook", "graph", "api://x", GRAPH]))
    assert not any(map(valid_resource_name, ["", "sharepoint", "ftp://x"]))
    assert resource_name(" api://x\n") == "api://x"  # as the schema's `$` lets it end
