"""Deep links (`/train?run=<id>`) on a freshly started dashboard server.

Streamlit looks for a `pages/` folder beside `app.py` when its first session
starts; finding one, it serves its legacy automatic page menu, and a deep link as
the server's first request runs the page file alone: no `app.py`, so no
`st.navigation`, sidebar or page config. Only once some session has run
`app.py` does Streamlit switch to `st.navigation` for good. `app.py` calls
`mark_app_ran()` once the session has passed its sign-in gate, and
`forget_app_ran()` when it stops there; each page calls `route_through_app()`
first, which, for a session that has not passed `app.py` while Streamlit is still
in that legacy mode, makes the switch itself and reruns, so the page comes up
inside the app (behind its gate) as from any other link.
`tests/e2e/test_browser.py` checks this on a fresh server.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP_RAN_KEY = "tlcore_app_ran"


def mark_app_ran() -> None:
    """Record that this session has run `app.py` (its `st.navigation` and sign-in gate)."""
    st.session_state[APP_RAN_KEY] = True


def forget_app_ran() -> None:
    """Record that this session stopped at `app.py`'s sign-in gate: no page of its own."""
    st.session_state.pop(APP_RAN_KEY, None)


def route_through_app() -> None:
    """Rerun through `app.py` when this session reached a page without it."""
    if PagesManager.uses_pages_directory and not st.session_state.get(APP_RAN_KEY):
        # Streamlit sets this itself once app.py calls st.navigation; the pinned
        # Streamlit version (requirements.txt) keeps the attribute stable.
        PagesManager.uses_pages_directory = False
        st.rerun()
