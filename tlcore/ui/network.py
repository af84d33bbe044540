"""Whether the dashboard is open to the network without a login, and the warning that says so.

`make run` listens on 127.0.0.1 only. A server started with another address
(`make run HOST=0.0.0.0`, `--server.address`, or none at all, which listens on
every interface) lets anyone who can reach the machine import files from its
folders, start training and delete runs, unless a login is configured: Streamlit's
(an `[auth]` section in `.streamlit/secrets.toml`) or a proxy's trusted user headers
(`tlcore.ui.identity`).
"""

from __future__ import annotations

import ipaddress

import streamlit as st

from tlcore.ui import identity
from tlcore.ui.text import plain

LOCALHOST_NAMES = ("localhost", "localhost.")


def is_loopback(address: str | None) -> bool:
    """Whether a server address only accepts connections from this machine.

    Args:
        address: The `server.address` option: an IP address, a host name, or
            None / "" (Streamlit then listens on every interface).

    Returns:
        True for 127.0.0.0/8, ::1 (also written `[::1]` or IPv4-mapped) and
        `localhost`; False for anything else, unknown host names included.
    """
    text = (address or "").strip().strip("[]")
    if text.lower() in LOCALHOST_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def login_configured() -> bool:
    """Whether people must sign in: an `[auth]` section in the secrets, or trusted user headers.

    Raises:
        ConfigError: when a secrets file exists but cannot be read.
    """
    return identity.login_mode() != "none"


def exposure_warning() -> str | None:
    """The warning to show while the server is reachable from the network without a login.

    Returns:
        Markdown for `st.warning`, or None when the server listens on loopback
        only or a login is configured.
    """
    address = st.get_option("server.address")
    if is_loopback(address) or login_configured():
        return None
    port = st.get_option("server.port")
    where = f"{address}:{port}" if address else f"port {port} of this machine"
    return (f"Shared on the network without a login: anyone who can reach {plain(where)} can use "
            "this studio. It can read server folders, train and delete runs. Restart it with "
            "`make run` (this machine only), or set up a login in `.streamlit/secrets.toml`.")
