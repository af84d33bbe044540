"""Who is using the page: the UI's single source of the current `auth.Actor`.

Three login modes, from Streamlit's own settings:

* `"oidc"`: Streamlit's secrets have an `[auth]` section, so people sign in with
  `st.login()` (OpenID Connect) and `st.user` holds their identity token's claims.
* `"headers"`: Streamlit's `server.trustedUserHeaders` maps a header that a
  company proxy sets (and strips from clients' requests) to `st.user["email"]`.
* `"none"`: neither; everyone acts as `auth.OPERATOR` (admin), as before logins
  existed.

Both at once are refused: Streamlit lets the header overwrite the email of a
signed-in user, so anyone signed in could name themselves anyone else.

An email the provider marks unverified (`email_verified: false`) is not used as
the person's id: they are known by their `sub` claim instead, so a provider that
lets people type any address cannot make them someone the roles file lists.

Roles come from `auth.role_for`, with the `[tlcore.roles]` table of the secrets
passed along when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import streamlit as st

from tlcore import auth
from tlcore.errors import ConfigError
from tlcore.workspace import Workspace

LoginMode = Literal["none", "oidc", "headers"]


def _secrets() -> Mapping[str, Any]:
    """Streamlit's secrets; empty when there is no secrets file.

    Raises:
        ConfigError: when a secrets file exists but cannot be read, so a broken
            login setting never opens the studio to everyone.
    """
    try:
        return st.secrets.to_dict()
    except FileNotFoundError as exc:  # Streamlit's StreamlitSecretNotFoundError
        if any(Path(path).exists() for path in st.get_option("secrets.files")):
            raise ConfigError(f"Streamlit's secrets cannot be read: {exc}") from None
        return {}


def login_mode() -> LoginMode:
    """How people sign in: "oidc", "headers" or "none" (see the module docstring).

    Raises:
        ConfigError: when a secrets file exists but cannot be read, or when both
            logins are configured.
    """
    oidc, headers = "auth" in _secrets(), bool(st.get_option("server.trustedUserHeaders"))
    if oidc and headers:
        raise ConfigError(
            "Both a sign-in ([auth] in .streamlit/secrets.toml) and trusted proxy headers "
            "(server.trustedUserHeaders) are configured; Streamlit would let the header replace "
            "the signed-in email. Keep one of them and restart the studio.")
    return "oidc" if oidc else "headers" if headers else "none"


def _secrets_roles() -> Mapping[str, Any] | None:
    roles = _secrets().get("tlcore", {}).get("roles")
    return roles if isinstance(roles, Mapping) else None


def current_actor(ws: Workspace) -> auth.Actor | None:
    """Who is using this page, or None when login is configured and nobody is signed in.

    Args:
        ws: The workspace, whose `roles.toml` gives signed-in users their role.

    Returns:
        `auth.OPERATOR` without login; otherwise an Actor whose `user` is the
        signed-in email (lower-cased; OIDC's `sub` when the token has no email or
        the provider says it is not verified),
        `name` the token's name or that id, and `role` from `auth.role_for`.

    Raises:
        ConfigError: when the secrets file or the roles file is malformed.
    """
    mode = login_mode()
    if mode == "none":
        return auth.OPERATOR
    info = st.user.to_dict()
    if mode == "oidc" and not info.get("is_logged_in"):
        return None
    email = info.get("email")
    if mode == "oidc" and _unverified(info.get("email_verified")):
        email = None
    user = (email.strip().lower() if isinstance(email, str) and email.strip()
            else info.get("sub") if mode == "oidc" else None)
    if not user:
        return None
    name = info.get("name") if mode == "oidc" else None
    return auth.Actor(user=str(user), name=str(name or user),
                      role=auth.role_for(str(user), ws, _secrets_roles()))


def _unverified(claim: Any) -> bool:
    """Whether an `email_verified` claim says no (absent means the provider does not say)."""
    if isinstance(claim, str):
        return claim.strip().lower() != "true"
    return claim is not None and claim is not True
