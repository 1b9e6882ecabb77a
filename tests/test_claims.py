"""The claim rules: verified email or sub, Microsoft's tid/oid pin, expectedUser and the pin."""

from __future__ import annotations

import pytest

from service import errors
from service.oauth.claims import (
    Identity,
    check_identity,
    identity_fields,
    microsoft_identity,
    subject_identity,
    verified_email,
)

ISSUER = "https://idp.example.test"


@pytest.mark.parametrize(
    ("flag", "trusted"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        (False, False),
        ("false", False),
        (None, False),
        (1, False),
        ("yes", False),
    ],
)
def test_email_only_with_email_verified_true(flag: object, trusted: bool) -> None:
    """An email is trusted only when the same claims say email_verified: true (or "true")."""
    claims = {"email": "u@example.test", **({} if flag is None else {"email_verified": flag})}
    assert verified_email(claims) == ("u@example.test" if trusted else None)


def test_subject_identity_prefers_a_verified_email() -> None:
    """A verified email is the user, from the id_token or from userinfo; the pin is sub + iss."""
    id_claims = {"iss": ISSUER, "sub": "s-1"}
    info = {"sub": "s-1", "email": "u@example.test", "email_verified": True}
    found = subject_identity(id_claims, info, ISSUER)
    assert found == Identity("u@example.test", {"sub": "s-1", "iss": ISSUER}, "userinfo")
    own = subject_identity({**id_claims, "email": "t@x.test", "email_verified": True}, None, None)
    assert own == Identity("t@x.test", {"sub": "s-1", "iss": ISSUER}, "id_token")


def test_unverified_email_and_usernames_fall_back_to_sub() -> None:
    """Unverified email, preferred_username, upn and name never name the user: sub does."""
    info = {
        "sub": "s-2",
        "email": "boss@corp.test",
        "preferred_username": "boss@corp.test",
        "upn": "boss@corp.test",
        "name": "Boss",
    }
    found = subject_identity(None, info, ISSUER)
    assert found is not None and found.user == "s-2" and found.pin == {"sub": "s-2", "iss": ISSUER}
    assert subject_identity(None, {"sub": "s-3"}, None) == Identity(
        "s-3", {"sub": "s-3"}, "userinfo"
    )
    assert subject_identity(None, {"email": "a@b.test", "email_verified": True}, ISSUER) is None


def test_google_issuer_without_scheme_pins_the_same() -> None:
    """Google's id_tokens name their issuer with or without https://: one pin either way."""
    bare = subject_identity({"iss": "accounts.google.com", "sub": "g"}, None, None)
    full = subject_identity({"iss": "https://accounts.google.com", "sub": "g"}, None, None)
    assert bare is not None and full is not None and bare.pin == full.pin


def test_microsoft_pins_tid_and_oid_and_ignores_email() -> None:
    """Microsoft: tid/oid pin the user; preferred_username (else upn, else oid) is shown."""
    claims = {
        "tid": "t-1",
        "oid": "o-1",
        "sub": "pairwise",
        "email": "ceo@victim.test",
        "email_verified": True,
    }
    assert microsoft_identity(claims) == Identity("o-1", {"tid": "t-1", "oid": "o-1"})
    named = microsoft_identity({**claims, "upn": "u@contoso.test"})
    assert named is not None and named.user == "u@contoso.test"
    preferred = microsoft_identity({**claims, "preferred_username": "p@contoso.test"})
    assert preferred is not None and preferred.user == "p@contoso.test"
    assert microsoft_identity({"oid": "o-1", "preferred_username": "p@x.test"}) is None
    assert microsoft_identity({"tid": "t-1", "oid": ""}) is None


def test_expected_user_compared_without_case() -> None:
    """expectedUser, asked now or kept on the account, must be the user (case aside)."""
    who = Identity("Erin@Example.test", {"sub": "e"})
    check_identity(who, "erin@example.TEST", {})
    check_identity(who, None, {"expectedUser": "ERIN@example.test"})
    for asked, kept in (("mallory@example.test", None), (None, "mallory@example.test")):
        with pytest.raises(errors.UserMismatch, match=r"mallory@example\.test was expected"):
            check_identity(who, asked, {"expectedUser": kept})


def test_a_pinned_account_takes_only_its_identity() -> None:
    """Every pin field the account holds must be the new identity's; no pin takes anyone."""
    alice = Identity("alice@contoso.test", {"tid": "t-1", "oid": "o-1"})
    check_identity(alice, None, {"tid": "t-1", "oid": "o-1", "sub": None})
    check_identity(alice, None, {})  # a new or imported account
    same_name = Identity("alice@contoso.test", {"tid": "t-2", "oid": "o-9"})
    with pytest.raises(errors.UserMismatch, match="belongs to another user"):
        check_identity(same_name, "alice@contoso.test", {"tid": "t-1", "oid": "o-1"})
    with pytest.raises(errors.UserMismatch):
        check_identity(
            Identity("x", {"sub": "s", "iss": "other"}), None, {"sub": "s", "iss": ISSUER}
        )
    check_identity(Identity("x", {"sub": "s", "iss": ISSUER}), None, {"sub": "s"})


def test_identity_fields_stored_on_the_account() -> None:
    """A consent stores the pin and, when there is one, the expectedUser to keep."""
    alice = Identity("a", {"tid": "t-1", "oid": "o-1"})
    assert identity_fields(alice, None) == {"tid": "t-1", "oid": "o-1"}
    assert identity_fields(alice, "a@x.test") == {
        "tid": "t-1",
        "oid": "o-1",
        "expectedUser": "a@x.test",
    }
