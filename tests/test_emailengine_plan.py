"""The EmailEngine import plan: what is left out, with a reason, rather than widened or guessed."""

from __future__ import annotations

from service.ops.emailengine_format import EeAccount
from service.ops.emailengine_plan import Plan, plan_account, plan_apps, plan_token, target_kind


def test_plan_never_widens_or_guesses() -> None:
    """Narrowed tokens and unknown clouds are left out with a reason; unknown scopes dropped."""
    # dod is a cloud here since the provider types became EmailEngine's; "mars" is not
    plan = Plan()
    plan_token(plan, "a" * 64, {"scopes": ["api"], "permissions": {"read": ["x"]}})
    plan_token(plan, "b" * 64, {"scopes": ["smtp", "metrics"], "created": 5})
    plan_token(plan, "c" * 64, {"scopes": ["imap-proxy"]})
    base = {"provider": "outlook", "clientId": "c", "clientSecret": "s", "authority": "common"}
    plan_apps(plan, {"APPMARS": {**base, "cloud": "mars"}, "APPGCC": {**base, "cloud": "gcc-high"}})
    reasons = {(s.what, s.id): s.reason for s in plan.skipped}
    assert "permissions" in reasons[("token", "a" * 16)]
    assert "smtp" in reasons[("field", "b" * 16 + ".scopes")]
    assert "none of its scopes" in reasons[("token", "c" * 16)]
    assert [(t.digest, t.scopes) for t in plan.tokens] == [("b" * 64, ["metrics"])]
    assert "mars" in reasons[("app", "APPMARS")]
    assert plan.apps["APPGCC"]["cloud"] in ("usgov", "gcc-high")
    assert plan.apps["APPGCC"]["provider"] == target_kind("outlook")


def test_service_apps_planned_or_left_out_with_reason() -> None:
    """Service-account apps come over with their fields; what cannot work is left out, said why."""
    plan = Plan()
    key = {"serviceClient": "1", "serviceClientEmail": "sa@p.iam", "serviceKey": "PEM"}
    apps = {
        "GS": {"provider": "gmailService", "authMethod": "serviceKey", **key, "baseScopes": "api"},
        "GSX": {"provider": "gmailService", "authMethod": "externalAccount", "serviceClient": "1"},
        "OS": {"provider": "outlookService", "clientId": "c", "clientSecret": "s",
               "authority": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "baseScopes": "imap"},
        "OSC": {"provider": "outlookService", "clientId": "c", "clientSecret": "s",
                "authority": "common"},
    }  # fmt: skip
    plan_apps(plan, apps)
    reasons = {(s.what, s.id): s.reason for s in plan.skipped}
    assert plan.apps["GS"] == {"id": "GS", "provider": "gmailService", **key, "baseScopes": "api"}
    assert "externalAccount" in reasons[("app", "GSX")]
    assert "tenant" in reasons[("app", "OSC")]
    assert "baseScopes" not in plan.apps["OS"]
    assert plan.apps["OS"]["tenant"] == apps["OS"]["authority"]
    assert "Graph" in reasons[("field", "OS.baseScopes")]
    box = EeAccount("box", None, "m@x.test", {"provider": "GS", "auth": {"user": "m@x.test"}})
    stray = EeAccount("rt", None, None, {"provider": "OS", "refreshToken": "RT", "auth": {}})
    for account in (box, stray):
        plan_account(plan, account, set(apps))
    assert [(a.id, a.user, a.refresh_token) for a in plan.accounts] == [("box", "m@x.test", None)]
    reasons = {(s.what, s.id): s.reason for s in plan.skipped}
    assert "names no mailbox" in reasons[("account", "rt")]
