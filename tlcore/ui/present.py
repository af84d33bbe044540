"""The presenter view's address: `/present?runs=<id>,<id>`, a read-only page for demos.

The Runs page links here for the runs ticked in its table; the link can be
opened on a projector or shared with anyone who may sign in to the studio.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import streamlit as st

from tlcore.errors import ConfigError
from tlcore.workspace import check_run_id

URL_PATH = "present"  # the page's `url_path` in app.py
URL_RUNS = "runs"  # ?runs=id1,id2, as on the Runs page


def presenter_link(run_ids: Sequence[str]) -> str:
    """The presenter view's address for these runs, from the server's root.

    Args:
        run_ids: The runs to present, in the order their charts show them.

    Returns:
        A path such as `/present?runs=ab12cd,ef34gh`, under `server.baseUrlPath`
        when one is set; for `st.link_button`, which opens it in a new tab.

    Raises:
        ConfigError: if there is no run id, or one that is not a run id.
    """
    if not run_ids:
        raise ConfigError("A presenter link needs at least one run. Received: run_ids=[]")
    ids = [check_run_id(i) for i in dict.fromkeys(run_ids)]
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    path = f"/{base}/{URL_PATH}" if base else f"/{URL_PATH}"
    return f"{path}?{urlencode({URL_RUNS: ','.join(ids)}, safe=',')}"


def requested_runs() -> list[str]:
    """The run ids of this page's `?runs=`, in order, each once."""
    text = st.query_params.get(URL_RUNS, "")
    return [i for i in dict.fromkeys(t.strip() for t in text.split(",")) if i]
