"""`tlcore.ui.identity`: the login mode and the current actor, in a simulated app run."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "secret",
        "client_id": "studio", "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:1/.well-known/openid-configuration"}


def _app() -> None:
    import streamlit as st

    from tlcore.ui import identity
    from tlcore.workspace import Workspace

    st.text(identity.login_mode())
    st.text(repr(identity.current_actor(Workspace.from_env())))


def _shown(at: AppTest) -> list[str]:
    at.run()
    assert not at.exception
    return [t.value for t in at.text]


def test_without_login_everyone_is_the_operator(ws):
    assert _shown(AppTest.from_function(_app)) == [
        "none", "Actor(user=None, name='operator', role='admin')"]


def test_oidc_signed_out_is_nobody_and_signed_in_gets_a_role(ws):
    (ws.root / "roles.toml").write_text('default = "viewer"\n', encoding="utf-8")
    at = AppTest.from_function(_app)
    at.secrets["auth"] = AUTH
    at.secrets["tlcore"] = {"roles": {"users": {"bob@example.com": "admin"}}}
    at.user = {"is_logged_in": False}
    assert _shown(at) == ["oidc", "None"]
    at.user = {"is_logged_in": True, "email": "Bob@Example.com", "name": "Bob", "sub": "b1"}
    assert _shown(at) == ["oidc", "Actor(user='bob@example.com', name='Bob', role='admin')"]
    at.user = {"is_logged_in": True, "sub": "carol-42"}
    assert _shown(at) == ["oidc", "Actor(user='carol-42', name='carol-42', role='viewer')"]


def test_trusted_headers_name_the_user(ws, trusted_headers):
    at = AppTest.from_function(_app)
    at.user = {"email": "dave@example.com"}
    assert _shown(at) == [
        "headers", "Actor(user='dave@example.com', name='dave@example.com', role='member')"]
    at.user = {}
    assert _shown(at) == ["headers", "None"]
