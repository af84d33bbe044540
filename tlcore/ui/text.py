"""How pages write values: user-supplied strings as plain text, percentages.

Streamlit renders Markdown in `st.markdown`, `st.caption`, the message boxes,
toasts, progress and spinner texts, image captions, metric values and widget
labels (page links, expanders, buttons), with its own additions: `:red[...]`
colours, `:material/icon:` icons, `:smile:` emoji shortcodes and `$...$` LaTeX.
A class, dataset, run or folder name put there as is can turn into a heading, a
link, an image (which every viewer's browser fetches) or coloured text. `plain`
escapes such a string so that it shows exactly as typed, and a pasted URL
stays text, not a link. Every page writes
names through it, error messages too (they quote
what they received). `st.text`, tables, and the options of a selectbox or
multiselect show text as it is; radio, pills and segmented-control options are
Markdown.
"""

from __future__ import annotations

import math
import re
import string

MISSING = "—"  # shown for a value that does not exist (never 0 or an empty cell)

# CommonMark lets every ASCII punctuation character be escaped with a backslash, and
# an escaped character starts nothing: no emphasis, link, HTML, list, heading,
# table, directive (`:red[...]`, `:material/...:`) or math.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
# Emoji shortcodes are matched in the rendered text, after escapes are gone: a word
# joiner (invisible, zero width) after the colon keeps `:smile:` as typed.
_SHORTCODE = re.compile(r":(?=[\w+-]+:)")
# GitHub-flavoured autolinks (`https://...`, `www.x.y`) are also found in the rendered
# text: a word joiner after `http`/`https` and `www` keeps them text. Email addresses
# (a `mailto:` link at most) stay whole, so that they copy as they read.
_AUTOLINK = re.compile(r"(?i)(?:(?<=https)|(?<=http))(?=:)|(?<=www)(?=\.)")
_WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """`text` escaped so that Streamlit's Markdown shows it exactly as typed.

    Args:
        text: A user-supplied string (or anything with a `str`), e.g. a class
            name, to embed in Markdown: `st.success(f"Imported **{plain(name)}**")`.

    Returns:
        The text with every ASCII punctuation character backslash-escaped, and
        emoji shortcodes and autolinks broken up; it renders as the original text.
    """
    text = _AUTOLINK.sub(_WORD_JOINER, _SHORTCODE.sub(":" + _WORD_JOINER, str(text)))
    return _PUNCTUATION.sub(r"\\\1", text)


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal: `0.8734` -> `"87.3%"`.

    Args:
        value: A fraction (1.0 is 100%), or None (or NaN) when there is none.

    Returns:
        The percentage, or `MISSING` ("—") for a missing value.
    """
    if value is None or math.isnan(value):
        return MISSING
    return f"{value * 100:.1f}%"
