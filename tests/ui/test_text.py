"""`tlcore.ui.text`: user-supplied strings shown as typed, one percent format."""

from __future__ import annotations

import html
import re
import string

import pytest

from tlcore.ui.text import MISSING, percent, plain

# Names a user could give a class, dataset, run or folder, each of which Streamlit's
# Markdown would otherwise turn into something else.
NAMES = [
    "**bold** and _italic_", "# heading", "- item", "+ item", "1. item", "2) item", "> quote",
    "[link](https://example.com)", "![image](cat.png)", "<b>html</b>", "&amp; entity",
    ":red[alert]", ":material/home:", ":smile: and :+1:", "$x^2$ and $$y$$", "a | b | c",
    "~~gone~~", "`code`", "www.example.com", "me@example.com", "back\\slash\\", "a_b_c",
    "---", "line one\nline two", "plain-name_1.0", "", "see https://example.com/x?a=1",
    "HTTP://EXAMPLE.COM", "notes at http://10.0.0.1:8080/path",
]
# GitHub-flavoured Markdown's autolink literals of web addresses, matched in the rendered
# text (mdast-util-gfm-autolink-literal): a URL or a www. domain.
AUTOLINKS = re.compile(r"(https?://|www(?=\.))[-.\w]+", re.I)


@pytest.mark.parametrize("name", NAMES)
def test_plain_text_renders_as_typed_in_commonmark(name):
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    rendered = md.render(plain(name)).removeprefix("<p>").removesuffix("</p>\n")
    shown = html.unescape(rendered.replace("<br />", "")).replace("\u2060", "")
    assert shown == name


@pytest.mark.parametrize("name", NAMES)
def test_plain_text_starts_no_streamlit_markup(name):
    escaped = plain(name)
    # Every punctuation character is escaped: no `:directive[...]`, `:icon:` or `$math$`.
    tokens = re.findall(r"\\.|.", escaped, re.S)
    assert all(t.startswith("\\") or t not in string.punctuation for t in tokens)
    # Emoji shortcodes are matched after escapes are resolved: they must be broken too.
    resolved = "".join(t[-1] for t in tokens)
    assert not re.search(r":[\w+-]+:", resolved)
    # So are autolinks: a pasted URL or address stays text, not a link.
    assert not AUTOLINKS.search(resolved)


def test_plain_leaves_letters_digits_and_spaces_alone():
    assert plain("golden retriever 2") == "golden retriever 2"
    assert plain(42) == "42"


def test_percent_one_decimal_and_one_dash_for_missing():
    assert percent(0.8734) == "87.3%"
    assert percent(1) == "100.0%"
    assert percent(0.0) == "0.0%"
    assert percent(None) == MISSING == "—"
    assert percent(float("nan")) == MISSING
