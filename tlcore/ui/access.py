"""Who uses a page, and role checks the way pages show them.

Each page asks `page_actor` once. A control the actor may not use is drawn
disabled with `denied(...)` as its tooltip, and each action handler still calls
`permitted(...)` before it acts: a disabled widget only keeps a browser from
sending the action, it does not refuse one that arrives.

Without a login the actor is `auth.OPERATOR` (admin): every check passes and the
pages look as they did before roles existed.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from tlcore import auth
from tlcore.errors import PermissionDeniedError, TLCoreError
from tlcore.ui import identity
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

ANY_OWNER: Any = object()  # the check is on the role alone, not on an object's owner


def page_actor(ws: Workspace) -> auth.Actor:
    """The actor using this page; the page stops here when there is none.

    `app.py` signs people in before any page runs when a login is configured, so
    the stop is a safeguard: a page never acts for nobody.

    Args:
        ws: The workspace, whose roles file gives signed-in users their role.

    Returns:
        The signed-in user's actor, or `auth.OPERATOR` without a login.
    """
    try:
        actor = identity.current_actor(ws)
    except TLCoreError as exc:  # a malformed secrets or roles file
        st.error(plain(exc))
        st.stop()
    if actor is None:
        st.info("Sign in to use the studio.", icon=":material/login:")
        st.stop()
    return actor


def _require(actor: auth.Actor, action: str, owner: Any, what: str) -> None:
    if owner is ANY_OWNER:
        auth.require(actor, action, what=what)
    else:
        auth.require(actor, action, owner=owner, what=what)


def denied(actor: auth.Actor, action: str, owner: Any = ANY_OWNER, what: str = "") -> str | None:
    """Why `actor` may not do `action`, or None when it may: for disabling a control.

    Args:
        actor: Who asks.
        action: One of `auth.ACTIONS`.
        owner: The owner of the object acted on (None: the operator), or
            `ANY_OWNER` when the check is on the role alone.
        what: The action as a verb phrase for the message ("delete this run").

    Returns:
        `auth.require`'s one-line message, escaped for a tooltip or a message
        box (it may quote user ids), or None.
    """
    try:
        _require(actor, action, owner, what)
    except PermissionDeniedError as exc:
        return plain(exc)
    return None


def permitted(actor: auth.Actor, action: str, owner: Any = ANY_OWNER, what: str = "") -> bool:
    """Check before acting: False, with the reason in an error box, when refused.

    Independent of `denied`, so an action stays refused even where a control was
    left enabled.

    Args:
        actor: Who asks.
        action: One of `auth.ACTIONS`.
        owner: As for `denied`.
        what: As for `denied`.
    """
    try:
        _require(actor, action, owner, what)
    except PermissionDeniedError as exc:
        st.error(plain(exc), icon=":material/lock:")
        return False
    return True
