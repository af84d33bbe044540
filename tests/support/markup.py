"""Reading page output back: Markdown as a reader sees it, and every string Streamlit renders.

Pages write user-supplied names through `tlcore.ui.text.plain`, which escapes
punctuation with backslashes; `shown` undoes that so tests can compare with the
sentence a reader sees. `markdown_strings` and `chart_strings` collect what a
page hands to Streamlit's Markdown renderer and to Plotly, for tests that check
no name gets rendered as markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from google.protobuf.json_format import MessageToDict
from streamlit.testing.v1 import AppTest

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_WORD_JOINER = "\u2060"
# Elements that Streamlit shows as plain text (tables, code, selectbox and multiselect
# options, text inputs) or that are not text at all (charts are checked on their own).
PLAIN_ELEMENTS = {"dataframe", "arrow_data_frame", "code", "text", "selectbox", "multiselect",
                  "text_input", "plotly_chart", "file_uploader", "number_input"}


def shown(markdown: str) -> str:
    """The text of `markdown` with `plain`'s escapes resolved (emphasis markers stay)."""
    return _ESCAPED.sub(r"\1", markdown).replace(_WORD_JOINER, "")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _nodes(at: AppTest) -> Iterator[tuple[str, Any]]:
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "DESCRIPTOR"):
            yield getattr(node, "type", ""), proto


def markdown_strings(at: AppTest) -> list[str]:
    """Every string of the page that Streamlit may render as Markdown.

    Bodies of markdown, captions, headings, alerts and toasts; labels of metrics,
    expanders, tabs, buttons and page links; image captions, progress texts and
    radio options. Element ids (which hold widget keys) are left out.
    """
    out = []
    for kind, proto in _nodes(at):
        if kind in PLAIN_ELEMENTS:
            continue
        fields = MessageToDict(proto)
        fields.pop("id", None)
        out.extend(_strings(fields))
    return out


def chart_strings(at: AppTest) -> list[str]:
    """Every string inside the page's Plotly figures (titles, ticks, names, hover text)."""
    out = []
    for kind, proto in _nodes(at):
        if kind == "plotly_chart":
            out.extend(_strings(json.loads(proto.spec)))
    return out
