"""The sign-in gate every page passes when a login is configured, and who is signed in.

`app.py` asks `tlcore.ui.identity` who is using the page. Nobody signed in:
`gate` draws a small sign-in screen (OpenID Connect through `st.login`), or,
behind a proxy that sends no user header, an error, and stops the script before
any page runs. Signed in: `user_panel` shows who in the sidebar, with a sign-out
button for OpenID Connect (a proxy's login is the proxy's to end).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import streamlit as st

from tlcore.auth import Actor
from tlcore.ui.text import plain

NO_PROXY_USER = ("The proxy in front of this studio sent no signed-in user, so the studio "
                 "cannot tell who you are. Open it through the proxy's address; if you did, "
                 "ask the proxy's administrator (server.trustedUserHeaders).")


def providers(auth: Mapping[str, Any]) -> list[str | None]:
    """The identity providers of Streamlit's `[auth]` secrets, as `st.login` names them.

    Args:
        auth: The `[auth]` table: shared settings, the default provider's settings
            (`client_id`, ...) and/or one `[auth.<name>]` table per named provider.

    Returns:
        None for the default provider when `[auth]` holds one, then each named
        provider in file order; `[None]` when none is set up, so that signing in
        reports Streamlit's own message on what is missing.
    """
    named = [name for name, value in auth.items() if isinstance(value, Mapping)]
    default: list[str | None] = [None] if "client_id" in auth or not named else []
    return default + named


def sign_in_screen(auth: Mapping[str, Any]) -> None:
    """A title, one line and a "Sign in" button per identity provider."""
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Transfer-learning studio")
        st.write("This studio is shared by a team: sign in to see its datasets and runs.")
        for provider in providers(auth):
            label = "Sign in" if provider is None else f"Sign in with {provider.capitalize()}"
            st.button(label, key=f"signin_{provider or 'default'}", type="primary",
                      icon=":material/login:", on_click=st.login,
                      args=() if provider is None else (provider,))


def gate(mode: str, problem: str | None = None) -> NoReturn:
    """What a page shows instead of itself when nobody is signed in; stops the script.

    Args:
        mode: The login mode, "oidc" or "headers" (`identity.login_mode`).
        problem: A one-line error that keeps anyone from signing in (a malformed
            secrets or roles file); shown instead of the sign-in screen.
    """
    if problem:
        st.error(problem, icon=":material/lock:")
    elif mode == "headers":
        st.error(NO_PROXY_USER, icon=":material/lock:")
    else:
        sign_in_screen(st.secrets.get("auth", {}))
    st.stop()


def user_panel(actor: Actor, mode: str) -> None:
    """Who is signed in (name, email, role), and a sign-out button for OpenID Connect."""
    name = plain(actor.name or actor.user)
    email = f"  \n{plain(actor.user)}" if actor.user and actor.user != actor.name else ""
    st.markdown(f":material/account_circle: **{name}**{email}")
    st.caption(f"Role: {actor.role}")
    if mode == "oidc":
        st.button("Sign out", key="app_sign_out", icon=":material/logout:", on_click=st.logout)
