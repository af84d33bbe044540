"""Deep links opened while signed out.

A deep link opened while signed out would otherwise be lost: Streamlit's
OpenID Connect callback always lands on the root page. The gate keeps the page
and query the browser asked for (`remember_destination`), keyed by the
browser's XSRF token, which survives the trip to the identity provider; once
signed in, `app.py` takes it back (`take_destination`) and switches there.
`tests/e2e/test_login.py` checks this with a presenter link.
"""

from __future__ import annotations

import hashlib
import threading
import time

import streamlit as st
from streamlit.web.server.starlette.starlette_app_utils import decode_xsrf_token_string
from streamlit.web.server.starlette.starlette_server_config import XSRF_COOKIE_NAME

# How long a sign-in may take and still land where it started.
DESTINATION_TTL_S = 15 * 60
DESTINATIONS_MAX = 10_000  # browsers remembered at once; the oldest go first


@st.cache_resource
def _destinations() -> tuple[threading.Lock, dict[str, tuple[float, str, dict[str, str]]]]:
    """The server's pending destinations: browser key -> (when, page URL path, query)."""
    return threading.Lock(), {}


def _browser_key() -> str | None:
    """A key for this browser that survives a sign-in: a hash of its XSRF token.

    Streamlit re-masks the token each time it sets the cookie; the token itself
    stays. None without the cookie (XSRF protection off).
    """
    token, _ = decode_xsrf_token_string(st.context.cookies.get(XSRF_COOKIE_NAME, ""))
    return hashlib.sha256(token).hexdigest() if token else None


def remember_destination(url_path: str) -> None:
    """Keep the page (its URL path, "" for the root) and query asked for while signed out.

    The root page without a query forgets what this browser asked for before.
    """
    key = _browser_key()
    if key is None:
        return
    query = st.query_params.to_dict()
    lock, pending = _destinations()
    now = time.time()
    with lock:
        pending.pop(key, None)
        if not url_path and not query:
            return
        for old in [k for k, (when, _, _) in pending.items()
                    if now - when > DESTINATION_TTL_S]:
            del pending[old]
        while len(pending) >= DESTINATIONS_MAX:
            del pending[next(iter(pending))]
        pending[key] = (now, url_path, query)


def take_destination() -> tuple[str, dict[str, str]] | None:
    """The page URL path and query this browser asked for before it signed in, once."""
    lock, pending = _destinations()
    if not pending:  # the usual case, on every run of app.py: no cookie to decode
        return None
    key = _browser_key()
    if key is None:
        return None
    with lock:
        entry = pending.pop(key, None)
    if entry is None or time.time() - entry[0] > DESTINATION_TTL_S:
        return None
    return entry[1], entry[2]
