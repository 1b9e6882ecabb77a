"""Which token a `resource` or `scopes` request names: its scopes, audience and cache slot (pure).

A Microsoft refresh token mints access tokens for any resource its user consented to, one
resource per token: the refresh asks `scope` = that resource's scopes (+ offline_access, so
that a refresh token comes back). `outlook` and `graph` name the app's cloud's Exchange Online
and Microsoft Graph; any other audience is given as its URI. Google and generic OIDC accept a
narrower `scope` on refresh (RFC 6749 §6), which `scopes` asks for: a down-scoped token.

The consented scopes are the app's (what consent asked for) and the grant's (what the provider
listed): a scope outside them is refused here, before any provider call.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from service import errors
from service.providers import (
    GOOGLE_KINDS,
    GOOGLE_SCOPE_ALIASES,
    MICROSOFT_CLOUDS,
    MICROSOFT_UNLISTED,
    current_cloud,
)

NAMES = ("outlook", "graph")
DEFAULT = "default"  # the resource name of the answer without parameters (API token limits)
# An audience URI (also the OpenAPI pattern of a resource, anchored there).
AUDIENCE_PATTERN = (
    r"(?:https://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~-]+)*|api://[A-Za-z0-9._~/-]+)/?"
)
AUDIENCE_URI = re.compile(AUDIENCE_PATTERN)
MAX_SCOPES = 50
RESOURCE_KINDS = frozenset({"outlook"})  # per-resource tokens (a multi-resource refresh token)
SCOPED_KINDS = frozenset({"gmail", "oidc"})  # down-scoped tokens through a narrower scope


@dataclass(frozen=True)
class Resource:
    """What one request asks for: sent as `scope`, cached under `slot`, limited by `name`.

    `name` is outlook, graph, an audience URI, or `default` for a down-scoped token of a
    provider without resources; `scopes` are what the token is for (`sent` adds what the
    provider wants beside them).
    """

    name: str
    audience: str | None
    scopes: tuple[str, ...]
    sent: str

    @property
    def slot(self) -> str:
        """The cache slot of this token: one per set of scopes asked."""
        return hashlib.sha256(self.sent.encode()).hexdigest()[:16]


def resolve(
    kind: str, cloud: str, consented: list[str], resource: str | None, scopes: str | None
) -> Resource:
    """The token a request names; InvalidResource, MixedResources or ScopeNotConsented else."""
    asked = _scope_list(scopes) if scopes is not None else None
    if kind in RESOURCE_KINDS:
        return _microsoft(cloud, consented, resource, asked)
    if kind in SCOPED_KINDS and resource is None and asked is not None:
        return _narrowed(kind, consented, asked)
    if resource is not None:
        raise errors.InvalidResource(
            "resources are Microsoft's (outlook apps); other providers take `scopes`",
            details={"resource": resource[:200], "provider": kind},
        )
    raise errors.InvalidResource(
        f"{kind} apps cannot mint tokens for a subset of their scopes",
        details={"provider": kind},
    )


def valid_resource_name(name: str) -> bool:
    """True for a name an API token may be limited to: default, outlook, graph or a URI."""
    return name in (DEFAULT, *NAMES) or (len(name) <= 300 and bool(AUDIENCE_URI.fullmatch(name)))


def resource_name(raw: str) -> str:
    """A resource name as given (a query parameter, a token's list), surrounding space dropped."""
    return raw.strip()


def _scope_list(raw: str) -> list[str]:
    asked = list(dict.fromkeys(raw.replace(",", " ").split()))
    if not asked or len(asked) > MAX_SCOPES or any(len(s) > 300 for s in asked):
        raise errors.ScopeNotConsented(
            f"scopes must name 1 to {MAX_SCOPES} scopes, separated by spaces or commas"
        )
    return asked


def audience_of(cloud: str, resource: str) -> str:
    """The audience URI of a resource name or URI (InvalidResource for anything else)."""
    _, graph, outlook = MICROSOFT_CLOUDS.get(current_cloud(cloud), MICROSOFT_CLOUDS["global"])
    if resource == "outlook":
        return f"https://{outlook}"
    if resource == "graph":
        return f"https://{graph}"
    if len(resource) <= 300 and AUDIENCE_URI.fullmatch(resource):
        return resource.rstrip("/")
    raise errors.InvalidResource(
        "resource must be outlook, graph or an audience URI (https://… or api://…)",
        details={"resource": resource[:200]},
    )


def _split(cloud: str, scope: str) -> tuple[str, str]:
    """(audience, permission) of a Microsoft scope; a bare one is Graph's."""
    if "://" not in scope:
        return audience_of(cloud, "graph"), scope
    audience, _, permission = scope.rpartition("/")
    return audience, permission


def _microsoft(
    cloud: str, consented: list[str], resource: str | None, asked: list[str] | None
) -> Resource:
    granted: dict[tuple[str, str], str] = {}  # (audience, permission), lower-cased -> scope
    for scope in consented:
        if scope.lower() in MICROSOFT_UNLISTED:
            continue
        audience, permission = _split(cloud, scope)
        granted.setdefault((audience.lower(), permission.lower()), f"{audience}/{permission}")
    if asked is None:
        assert resource is not None  # noqa: S101 - the handler asks one or the other
        audience = audience_of(cloud, resource)
        chosen = [s for (a, _), s in granted.items() if a == audience.lower()]
        # Nothing consented for it: `.default` lets the provider say (it refuses, or grants
        # what an administrator consented to for the whole tenant).
        chosen = chosen or [f"{audience}/.default"]
    else:
        audience, chosen = _consented_of(cloud, granted, asked)
        if resource is not None and audience_of(cloud, resource).lower() != audience.lower():
            raise errors.MixedResources(
                "the scopes asked belong to another resource than the one named",
                details={"resource": resource[:200]},
            )
    return Resource(
        name=_name_of(cloud, audience),
        audience=audience,
        scopes=tuple(chosen),
        sent=" ".join([*chosen, "offline_access"]),
    )


def _consented_of(
    cloud: str, granted: dict[tuple[str, str], str], asked: list[str]
) -> tuple[str, list[str]]:
    chosen: list[str] = []
    audiences: set[str] = set()
    for scope in asked:
        if scope.lower() in MICROSOFT_UNLISTED:
            continue
        audience, permission = _split(cloud, scope)
        found = granted.get((audience.lower(), permission.lower()))
        if found is None:
            raise errors.ScopeNotConsented(
                f"the scope {scope[:300]!r} is not among the account's consented scopes",
                details={"scope": scope[:300]},
            )
        chosen.append(found)
        audiences.add(audience.lower())
    if len(audiences) > 1:
        raise errors.MixedResources(
            "one token serves one resource: ask the scopes of each resource separately"
        )
    if not chosen:
        raise errors.ScopeNotConsented("scopes must name at least one resource scope")
    return chosen[0].rpartition("/")[0], chosen


def _name_of(cloud: str, audience: str) -> str:
    for name in NAMES:
        if audience_of(cloud, name).lower() == audience.lower():
            return name
    return audience


def _narrowed(kind: str, consented: list[str], asked: list[str]) -> Resource:
    def norm(scope: str) -> str:
        return GOOGLE_SCOPE_ALIASES.get(scope, scope) if kind in GOOGLE_KINDS else scope

    have = {norm(s) for s in consented}
    for scope in asked:
        if norm(scope) not in have:
            raise errors.ScopeNotConsented(
                f"the scope {scope[:300]!r} is not among the account's consented scopes",
                details={"scope": scope[:300]},
            )
    return Resource(name=DEFAULT, audience=None, scopes=tuple(asked), sent=" ".join(asked))
