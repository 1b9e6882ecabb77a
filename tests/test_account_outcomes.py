"""The account scripts' answers, typed where they are read; impossible answers refused."""

from __future__ import annotations

import pytest

from service.account_outcomes import Written, marked, noted, stored


def test_store_tokens_answers() -> None:
    """account_store_tokens answers one of four words; 'already' is not one of them."""
    assert [stored(w) for w in ("ok", "late", "gone", "superseded")] == [
        Written.OK,
        Written.LATE,
        Written.GONE,
        Written.SUPERSEDED,
    ]
    with pytest.raises(ValueError, match="already"):
        stored("already")
    with pytest.raises(ValueError, match="nonsense"):
        stored("nonsense")


def test_mark_reauth_and_note_failure_answers() -> None:
    """mark_reauth's 1/0/-1/-2 and note_failure's attempts/-1/-2 become named results."""
    assert [marked(n) for n in (1, 0, -1, -2)] == [
        Written.OK,
        Written.ALREADY,
        Written.GONE,
        Written.SUPERSEDED,
    ]
    assert [noted(n) for n in (0, 3, -1, -2)] == [0, 3, Written.GONE, Written.SUPERSEDED]
    with pytest.raises(KeyError):
        marked(2)
    with pytest.raises(ValueError, match="-3"):
        noted(-3)
