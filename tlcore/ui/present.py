"""The presenter view's address and slides: `/present?runs=<id>,<id>&slide=<n>`, read-only.

The Runs page links here for the runs ticked in its table; the link can be
opened on a projector or shared with anyone who may sign in to the studio. The
page is a sequence of slides (the comparison, then one per run); the slide
shown is in the URL, so a reload or a shared link opens the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import streamlit as st

from tlcore.errors import ConfigError
from tlcore.ui.text import plain
from tlcore.workspace import check_run_id

URL_PATH = "present"  # the page's `url_path` in app.py
URL_RUNS = "runs"  # ?runs=id1,id2, as on the Runs page
URL_SLIDE = "slide"  # ?slide=N, counted from 1
SLIDE_KEY = "present_slide"


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


def requested_slide(count: int) -> int:
    """The slide of this page's `?slide=` as an index below `count`; the first when unset or bad."""
    text = str(st.query_params.get(URL_SLIDE, "")).strip()
    number = int(text) if text.isdigit() else 1
    return min(max(number, 1), max(count, 1)) - 1


def _slide_to_url() -> None:
    """The slide picked: into the URL (picking the one shown again unselects it: ignored)."""
    picked = st.session_state.get(SLIDE_KEY)
    if picked is not None:
        st.query_params[URL_SLIDE] = str(picked + 1)


def slide_picker(titles: list[str]) -> int:
    """The slides by title, one picked: the page's only control. Returns the slide's index.

    The pick lives in the URL (`?slide=`), which also opens a link, a reload or
    browser history on the slide it names.

    Args:
        titles: Each slide's title, as typed (shown as plain text).
    """
    index = requested_slide(len(titles))
    if st.session_state.get(SLIDE_KEY) != index:
        st.session_state[SLIDE_KEY] = index
    st.segmented_control("Slide", list(range(len(titles))), key=SLIDE_KEY,
                         format_func=lambda i: f"{i + 1} · {plain(titles[i])}",
                         on_change=_slide_to_url, label_visibility="collapsed")
    if st.query_params.get(URL_SLIDE) != str(index + 1):
        st.query_params[URL_SLIDE] = str(index + 1)
    return index
