"""The training device as the dashboard shows it: probed once per server, in the background.

The probe (`device.device_info`) imports Keras in a subprocess: seconds on an idle server,
much longer on a busy one. It starts on the first page view and runs in a thread, so no
page waits for it; until it answers, callers get None and show that it is still checking.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import streamlit as st

from tlcore.errors import TLCoreError
from tlcore.runs import device
from tlcore.workspace import Workspace

# Asked again after this long, so a GPU added to a running server shows up.
PROBE_TTL_S = 3600
_PROBES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlcore-device-probe")


def _ask(root: str) -> dict:
    try:
        return device.device_info(ws=Workspace.from_env(root))
    except (TLCoreError, OSError) as exc:
        return {"device": "unknown", "gpus": [], "mixed_precision": False, "error": str(exc)}


@st.cache_resource(ttl=PROBE_TTL_S, show_spinner=False)
def _probe(root: str) -> Future:
    return _PROBES.submit(_ask, root)


def device_summary(ws: Workspace) -> dict | None:
    """`device.device_info`'s answer for `ws`, or None while the probe is still running.

    The first call on a server starts the probe; every later one reads its answer.
    """
    future = _probe(str(ws.root))
    return future.result() if future.done() else None
