"""One run in detail: every parameter (those off the defaults first) and its files.

Shown on the Train page's run panel and for a ticked run on Runs & compare. The
small text files (config, history, log) download from here; a file over
`DOWNLOAD_MAX_BYTES` is named with its size instead, so a long log never sits in
the server's memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from tlcore.charts.runs import value_text
from tlcore.config import RunConfig, flatten
from tlcore.data.limits import human_bytes
from tlcore.errors import TLCoreError
from tlcore.ui.text import plain
from tlcore.workspace import RunFiles, Workspace

DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024
# The run's small text files offered for download, with their content types.
DOWNLOADS = {"config.json": "application/json", "history.csv": "text/csv",
             "log.txt": "text/plain"}


def param_frame(config: Mapping[str, Any]) -> pd.DataFrame:
    """A run's flat config beside the defaults, the settings that differ first.

    Args:
        config: The run's config as a dict (as stored with the run).

    Returns:
        Columns `field`, `value`, `default` (text; `default` empty where the run
        keeps it) and `changed` (bool); changed fields first, each group in
        config order.
    """
    flat = flatten(dict(config))
    try:
        defaults = RunConfig.from_dict({"dataset": config.get("dataset") or "dataset"}).flat()
    except TLCoreError:  # a dataset name older rules allowed: compare without defaults
        defaults = {}
    rows = []
    for field, value in flat.items():
        text = value_text(value)
        default = value_text(defaults[field]) if field in defaults else "—"
        changed = field != "dataset" and default != text
        rows.append({"field": field, "value": text, "default": default if changed else "",
                     "changed": changed})
    frame = pd.DataFrame(rows, columns=["field", "value", "default", "changed"])
    return frame.sort_values("changed", ascending=False, kind="stable").reset_index(drop=True)


def folder_size(path: Path) -> tuple[int, int]:
    """Bytes and number of files under `path` (files that vanish meanwhile are skipped)."""
    total = count = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
            count += 1
    return total, count


def run_files(files: RunFiles) -> pd.DataFrame:
    """The run folder's entries: files with their sizes, folders with their totals.

    Args:
        files: The run's files.

    Returns:
        Columns `name` (folders end in "/"), `size` (bytes), `files` (1 for a
        file, the count inside a folder), sorted by name; empty when the folder
        does not exist.
    """
    rows = []
    try:
        entries = sorted(os.scandir(files.dir), key=lambda e: e.name)
    except OSError:
        entries = []
    for entry in entries:
        try:
            if entry.is_dir():
                size, count = folder_size(Path(entry.path))
                rows.append({"name": f"{entry.name}/", "size": size, "files": count})
            else:
                rows.append({"name": entry.name, "size": entry.stat().st_size, "files": 1})
        except OSError:  # removed while listed
            continue
    return pd.DataFrame(rows, columns=["name", "size", "files"])


def run_detail(ws: Workspace, run: dict, key: str) -> None:
    """Every parameter of `run`, its files and downloads of its small text files.

    Args:
        ws: The workspace.
        run: The run record (config as a dict).
        key: Prefix of the widget keys, unique on the page.
    """
    params = param_frame(run["config"])
    changed = int(params["changed"].sum())
    st.markdown(f"**Parameters** · {changed} differ{'s' if changed == 1 else ''} from the "
                "defaults (listed first, with the default beside them)")
    st.dataframe(params.drop(columns="changed"), key=f"{key}_params", hide_index=True,
                 column_config={"field": "Setting", "value": "Value",
                                "default": st.column_config.TextColumn(
                                    "Default", help="Empty where the run keeps the default.")})
    files = ws.run(run["id"])
    listing = run_files(files)
    st.markdown("**Files**")
    if listing.empty:
        st.caption("No files yet: the run folder is written when the run starts.")
        return
    st.caption(f"In {plain(files.dir)}. Config, history and log download from here up to "
               f"{human_bytes(DOWNLOAD_MAX_BYTES)} each; larger files stay on the server.")
    st.dataframe(listing.assign(size=listing["size"].map(human_bytes)), key=f"{key}_files",
                 hide_index=True, column_config={"name": "Name", "size": "Size",
                                                 "files": "Files"})
    sizes = dict(zip(listing["name"], listing["size"], strict=True))
    cols = st.columns(len(DOWNLOADS))
    for col, (name, mime) in zip(cols, DOWNLOADS.items(), strict=True):
        if name not in sizes:
            continue
        if sizes[name] > DOWNLOAD_MAX_BYTES:
            col.caption(f"{name} is {human_bytes(sizes[name])}, over the download limit: "
                        "read it on the server.")
            continue
        # A callable: the file is read when its download is asked for, not on every draw.
        col.download_button(name, (files.dir / name).read_bytes, file_name=f"{run['id']}-{name}",
                            mime=mime, key=f"{key}_download_{name}",
                            icon=":material/download:", on_click="ignore")
