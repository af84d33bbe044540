"""Messages that survive the rerun after an action.

A page that changes something (imports a dataset, renames a run) calls
`st.rerun()` so that every widget shows the new state; a message drawn before
the rerun would be wiped. `flash` keeps the message in the session and
`show_flash`, called where the page wants it, draws it once on the next run.
"""

from __future__ import annotations

from typing import Literal

import streamlit as st

Kind = Literal["success", "info", "error"]

_BOXES = {"success": st.success, "info": st.info, "error": st.error}
_ICONS = {"success": ":material/check_circle:"}


def _key(page: str) -> str:
    return f"{page}_flash"


def flash(page: str, kind: Kind, message: str) -> None:
    """Keep a message for `page`'s next run.

    Args:
        page: The page's session-state prefix (`"data"`, `"train"`, ...): each
            page shows only its own messages.
        kind: `"success"`, `"info"` or `"error"`: the box it is drawn in.
        message: Markdown; pass user-supplied names through `text.plain`.
    """
    st.session_state[_key(page)] = (kind, message)


def show_flash(page: str) -> None:
    """Draw `page`'s kept message, if any, and forget it.

    Args:
        page: The prefix given to `flash`.
    """
    kept = st.session_state.pop(_key(page), None)
    if kept is not None:
        kind, message = kept
        _BOXES[kind](message, icon=_ICONS.get(kind))
