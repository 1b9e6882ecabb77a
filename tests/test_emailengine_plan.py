"""The EmailEngine import plan: what is left out, with a reason, rather than widened or guessed."""

from __future__ import annotations

from service.ops.emailengine_plan import Plan, plan_apps, plan_token, target_kind


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
