"""The Ray cluster's address and its state for the sidebar, without importing Ray.

`TLCORE_RAY_ADDRESS` may carry credentials (`https://user:password@head:8265`, or a
`?token=...` for a proxy in front of the dashboard): every message and the sidebar
show it through `shown`, which hides them, as the store hides a database password.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tlcore.errors import ConfigError

ENV_ADDRESS = "TLCORE_RAY_ADDRESS"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
RUN_PREFIX = "tlcore-run-"
SWEEP_PREFIX = "tlcore-sweep-"
SUMMARY_TIMEOUT_S = 2.0
HIDDEN = "***"


def shown(url: str) -> str:
    """`url` with its password (or a user part alone, often a token) and query values hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{HIDDEN}@{host}" if has_password else f"{HIDDEN}@{host}"
    query = urlencode([(key, HIDDEN) for key, _ in parse_qsl(parts.query,
                                                            keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def address() -> str:
    """The Ray dashboard's address: `$TLCORE_RAY_ADDRESS`, default `http://127.0.0.1:8265`.

    Raises:
        ConfigError: if it is not an http(s) URL.
    """
    raw = os.environ.get(ENV_ADDRESS, "").strip()
    value = (raw or DEFAULT_ADDRESS).rstrip("/")
    scheme, _, host = value.partition("://")
    if scheme not in ("http", "https") or not host:
        raise ConfigError(f"{ENV_ADDRESS} must be the Ray dashboard's http(s) URL, e.g. "
                          f"{DEFAULT_ADDRESS}. Received: {ENV_ADDRESS}={shown(raw)!r}")
    return value


def reason(exc: BaseException, url: str | None = None) -> str:
    """The first line of `exc`, at most 200 characters, without `url`'s credentials.

    Args:
        exc: The error to quote in one line.
        url: The address it came from (default `$TLCORE_RAY_ADDRESS`); clients
            repeat it in their errors, so its password and query values are hidden.
    """
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    for secret in _secrets(url if url is not None else os.environ.get(ENV_ADDRESS, "")):
        text = text.replace(secret, HIDDEN)
    return text if len(text) <= 200 else text[:197] + "..."


def _secrets(url: str) -> list[str]:
    """The parts of `url` that `shown` hides, longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url] if url else []
    found = [value for _, value in parse_qsl(parts.query) if value]
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        found.append(password if has_password else user)
    return sorted((s for s in found if s), key=len, reverse=True)


def cluster_summary(url: str | None = None, timeout: float = SUMMARY_TIMEOUT_S
                    ) -> dict[str, Any]:
    """The cluster's resources and tlcore's jobs on it, for the sidebar.

    Args:
        url: The dashboard's address; default `address()`.
        timeout: Seconds to wait for each answer.

    Returns:
        `{"address", "gpus_total", "gpus_available", "cpus_total", "cpus_available",
        "jobs_pending", "jobs_running"}` (tlcore's runs and sweep workers), or
        `{"address", "error": one line}` when the head cannot be reached.
    """
    import json
    import urllib.error
    import urllib.request

    try:
        url = url or address()
    except ConfigError as exc:
        return {"address": shown(os.environ.get(ENV_ADDRESS, "")), "error": str(exc)}

    def get(endpoint: str) -> Any:
        with urllib.request.urlopen(url + endpoint, timeout=timeout) as answer:
            return json.loads(answer.read())

    try:
        # The Jobs API's list (what `JobSubmissionClient.list_jobs` reads), without
        # importing Ray into the dashboard's process.
        listed = get("/api/jobs/")
        status = get("/api/cluster_status")
    except (OSError, ValueError, urllib.error.URLError) as exc:
        return {"address": shown(url), "error": f"Cannot reach the Ray cluster at {shown(url)}: "
                f"{reason(getattr(exc, 'reason', exc))}."}
    usage = (((status.get("data") or {}).get("clusterStatus") or {})
             .get("loadMetricsReport") or {}).get("usage") or {}
    out: dict[str, Any] = {"address": shown(url)}
    for key, name in (("gpus", "GPU"), ("cpus", "CPU")):
        used, total = (usage.get(name) or [0.0, 0.0])[:2]
        out[f"{key}_total"] = total
        out[f"{key}_available"] = max(0.0, total - used)
    ours = [j for j in listed if (j.get("submission_id") or "").startswith(
        (RUN_PREFIX, SWEEP_PREFIX))]
    out["jobs_pending"] = sum(j.get("status") == "PENDING" for j in ours)
    out["jobs_running"] = sum(j.get("status") == "RUNNING" for j in ours)
    return out
