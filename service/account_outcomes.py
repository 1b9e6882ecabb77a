"""What the account scripts answer, typed where AccountStore reads the answer.

The Lua scripts (service/store/lua/account_*.lua) answer with strings and integers; these
types name them, and the readers below refuse an answer a script cannot give.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

APP_MISMATCH = "app_mismatch"  # account_save: the account is on another app (nothing written)


class SaveState(StrEnum):
    """account_save's answer: the account was created, or an existing one got a new grant."""

    NEW = "new"
    EXISTING = "existing"


class Written(StrEnum):
    """What a fenced script did with the result of a refresh."""

    OK = "ok"  # written (and the lock released)
    LATE = "late"  # written, though the lock had passed on (store_tokens only)
    ALREADY = "already"  # nothing to change: already reauth_required (mark_reauth only)
    GONE = "gone"  # the account was deleted meanwhile: nothing written
    SUPERSEDED = "superseded"  # its grant or refresh token changed meanwhile: nothing written


Fenced = Literal[Written.GONE, Written.SUPERSEDED]  # nothing written: the fence held
Stored = Literal[Written.OK, Written.LATE, Written.GONE, Written.SUPERSEDED]
Marked = Literal[Written.OK, Written.ALREADY, Written.GONE, Written.SUPERSEDED]
Noted = int | Fenced  # note_failure: the attempts so far when written


def stored(raw: object) -> Stored:
    """account_store_tokens' answer: 'ok', 'late', 'gone' or 'superseded'."""
    value = Written(str(raw))
    if value == Written.ALREADY:
        raise ValueError(f"account_store_tokens cannot answer {raw!r}")
    return value


def marked(raw: object) -> Marked:
    """account_mark_reauth's answer: 1 changed, 0 already so, -1 gone, -2 stale."""
    answers: dict[int, Marked] = {
        1: Written.OK,
        0: Written.ALREADY,
        -1: Written.GONE,
        -2: Written.SUPERSEDED,
    }
    return answers[int(str(raw))]


def noted(raw: object) -> Noted:
    """account_note_failure's answer: the attempts so far, or -1 gone, -2 stale."""
    value = int(str(raw))
    if value == -1:
        return Written.GONE
    if value == -2:
        return Written.SUPERSEDED
    if value < 0:
        raise ValueError(f"account_note_failure cannot answer {raw!r}")
    return value
