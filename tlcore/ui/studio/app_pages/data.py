"""Data: bring images in (zip upload, server folder or CSV, demo) and inspect each dataset.

Importing needs the member role, importing from a path on the server the admin
role; deleting a dataset is its owner's or an admin's (`tlcore.auth`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from tlcore import auth, data
from tlcore.charts import runs as charts
from tlcore.errors import TLCoreError
from tlcore.ui import data_edit
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.flash import flash, show_flash
from tlcore.ui.label_review import review_section
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

SAMPLES_PER_CLASS = 8
MAX_SAMPLE_CLASSES = 12
POLL_S = 0.25
SKIPPED_ROWS_SHOWN = 10  # skipped files listed in full; more scroll inside SKIPPED_HEIGHT_PX
SKIPPED_HEIGHT_PX = 400
SERVER_WHAT = "import from a folder or CSV on the server"
# The zip uploader's key changes after each import from it, which empties it (an
# uploader's file cannot be cleared through Session State).
UPLOAD_KEY = "data_upload"
UPLOAD_ROUND_KEY = "data_upload_round"
UPLOAD_NAME_KEY = "data_upload_name"


def upload_key() -> str:
    """The zip uploader's key in this round: `data_upload`, then `data_upload_1`, ..."""
    round_ = st.session_state.get(UPLOAD_ROUND_KEY, 0)
    return f"{UPLOAD_KEY}_{round_}" if round_ else UPLOAD_KEY


@st.cache_data(show_spinner=False, max_entries=32)
def dataset_details(root: str, name: str, created: float, version: str | None) -> dict:
    """The dataset's full record; keyed by creation time and version, so it is never stale."""
    return data.show_dataset(name, ws=Workspace.from_env(root))


@st.cache_data(show_spinner=False, max_entries=32)
def dataset_samples(root: str, name: str, created: float,
                    version: str | None) -> dict[str, list[str]]:
    files = data.sample_files(name, per_class=SAMPLES_PER_CLASS, ws=Workspace.from_env(root))
    return {label: [str(p) for p in paths] for label, paths in files.items()}


def suggest_name(text: str) -> str:
    """A valid dataset name from a file or folder name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).stem).strip("-_.")[:64]
    return name or "dataset"


def name_refusal(ws: Workspace, name: str, existing: list[str]) -> str | None:
    """Why `name` cannot name a new dataset, said as what to do on this page; None if free.

    The import's own refusal names a command-line fix, which a browser user cannot run.
    """
    if name in existing:
        return (f"A dataset named {plain(name)} already exists. Type another name under "
                f"Dataset name, or delete {plain(name)} first: choose it under Datasets below "
                "and use its Delete dataset button.")
    try:
        leftover = ws.dataset_dir(name).exists()
    except TLCoreError:
        return None  # a malformed name: the import's own check says what is allowed
    if leftover:
        return (f"The name {plain(name)} is held by the folder of an interrupted import. Type "
                "another name under Dataset name.")
    return None


def start_import(ws: Workspace, actor: auth.Actor, what: str, name: str, existing: list[str],
                 **request) -> None:
    """Start an import in its own process, owned by `actor`; the page follows it.

    Args:
        ws: The workspace.
        actor: Who imports: their role must allow it (a `source` on the server needs
            SERVER_IMPORT).
        what: What is imported, for the progress bar.
        name: The new dataset's name.
        existing: The datasets there are: a name among them is refused.
        **request: `source=`, `upload=` or `demo=True` (see `data.start_import`).
    """
    if not permitted(actor, auth.IMPORT):
        return
    if "source" in request and not permitted(actor, auth.SERVER_IMPORT, what=SERVER_WHAT):
        return
    refused = name_refusal(ws, name, existing)
    if refused:
        st.error(refused)
        return
    try:
        job = data.start_import(name, ws=ws, owner=actor.user, **request, **split_settings())
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    st.session_state["data_import"] = {"job": str(job), "what": what,
                                       "upload": "upload" in request}
    st.rerun()


def follow_import(slot, job: dict) -> None:
    """Show the running import's progress until it ends; success selects the new dataset.

    Either outcome is kept for the rerun (`flash`) that draws the page again with its
    buttons enabled.

    The import runs in another process: leaving the page or clicking elsewhere stops
    only this loop, and the next run of the page picks the import up again.
    """
    what = job["what"]
    bar = slot.progress(0.0, text=f"Importing {plain(what)}…")
    while (status := data.import_status(job["job"])).running:
        if status.total:
            bar.progress(min(1.0, status.done / status.total),
                         text=f"Importing {plain(what)}: {status.done} / {status.total} files · "
                              f"{plain(status.message)}")
        time.sleep(POLL_S)
    data.forget_import(job["job"])
    st.session_state.pop("data_import", None)
    if status.error:
        flash("data", "error", plain(status.error))  # the rerun shows it with the buttons enabled
        st.rerun()
    info = status.info
    flash("data", "success",
          f"Imported **{plain(info['name'])}**: {info['n_images']} images in "
          f"{len(info['classes'])} classes. Next: train a model on it on the Train page.")
    st.session_state["data_pending_select"] = info["name"]
    if job.get("upload"):  # a new, empty uploader and name: the zip is in
        st.session_state[UPLOAD_ROUND_KEY] = st.session_state.get(UPLOAD_ROUND_KEY, 0) + 1
        st.session_state.pop(UPLOAD_NAME_KEY, None)
    st.rerun()


def add_dataset_section(ws: Workspace, actor: auth.Actor, existing: list[str],
                        busy: bool) -> None:
    """The ways to add a dataset: in plain view on an empty workspace, else in an expander.

    The expander stays open while a zip is chosen or an import runs, so its Import
    button and progress never fold away.
    """
    if not existing:
        with st.container(border=True):
            st.markdown("**Or add your own images**")
            add_dataset_form(ws, actor, existing, busy)
        return
    if busy or st.session_state.get(upload_key()) is not None:
        st.session_state["data_add"] = True
    with st.expander("Add a dataset", key="data_add", on_change="rerun",
                     icon=":material/add_photo_alternate:"):
        add_dataset_form(ws, actor, existing, busy)


def add_dataset_form(ws: Workspace, actor: auth.Actor, existing: list[str], busy: bool) -> None:
    """Split settings, then one tab per kind of source, each with its Import button.

    The demo has a tab once the workspace holds a dataset; before that, its button
    sits at the top of the page.
    """
    st.markdown("**Split**")
    cols = st.columns(3)
    cols[0].number_input("Validation fraction", key="data_val", value=0.2, step=0.05,
                         format="%.2f", help="Share of each class held out for validation.")
    cols[1].number_input("Test fraction", key="data_test", value=0.1, step=0.05,
                         format="%.2f", help="Share of each class kept for the final test.")
    cols[2].number_input("Split seed", key="data_seed", value=0, step=1,
                         help="Same seed, same split. Every run on the dataset shares it.")
    names = ["Upload a zip", "Server folder or CSV", "New empty dataset"] + (
        ["Demo dataset"] if existing else [])
    tabs = st.tabs(names)
    with tabs[0]:
        st.caption("A zip with one folder per class (`cat/…`, `dog/…`). Non-images, "
                   "hidden files and `__MACOSX/` are skipped and listed.")
        upload = st.file_uploader("Zip of class folders", type=["zip"], key=upload_key())
        name = st.text_input("Dataset name", key=UPLOAD_NAME_KEY,
                             placeholder="defaults to the zip's name",
                             help="Letters, digits, '_', '-' or '.'")
        if st.button("Import zip", key="data_upload_import", type="primary",
                     disabled=upload is None or busy):
            # Keep the upload's own name: the dataset records it as its source.
            staged = suggest_name(upload.name) + ".zip"
            start_import(ws, actor, upload.name, name.strip() or suggest_name(upload.name),
                         existing, upload=(staged, upload.getvalue()))
    with tabs[1]:
        roots = ", ".join(f"`{root}`" for root in data.allowed_roots(ws))
        st.caption("A folder of class folders on the server, or a CSV of "
                   "`filepath,label` rows (paths relative to the CSV), inside "
                   f"{roots}.")
        refused = denied(actor, auth.SERVER_IMPORT, what=SERVER_WHAT)
        path = st.text_input("Path on the server", key="data_folder_path",
                             placeholder=f"{ws.import_dir}/flowers or labels.csv there",
                             disabled=refused is not None, help=refused)
        name = st.text_input("Dataset name", key="data_folder_name",
                             placeholder="defaults to the folder's name",
                             disabled=refused is not None)
        if st.button("Import", key="data_folder_import", type="primary", help=refused,
                     disabled=not path.strip() or busy or refused is not None):
            typed = Path(path.strip())
            try:
                source = data.check_server_path(path, ws)
            except TLCoreError as exc:
                st.error(str(exc))
            else:
                start_import(ws, actor, typed.name, name.strip() or suggest_name(typed.name),
                             existing, source=source)
    with tabs[2]:
        data_edit.new_dataset_form(ws, actor, busy, split_settings())
    if existing:
        with tabs[3]:
            demo_button(ws, actor, existing, busy)


def demo_button(ws: Workspace, actor: auth.Actor, existing: list[str], busy: bool) -> None:
    """"Create demo dataset", with what it makes."""
    st.caption("Generated coloured shapes in four classes: no download needed, and a "
               "model learns them in a few epochs. Good for a first run.")
    if "demo" in existing:
        st.caption("The demo dataset already exists.")
    if st.button("Create demo dataset", key="data_demo", type="primary",
                 icon=":material/auto_awesome:", disabled="demo" in existing or busy):
        start_import(ws, actor, "the demo dataset", "demo", existing, demo=True)


def split_settings() -> dict:
    return {"val": float(st.session_state.get("data_val", 0.2)),
            "test": float(st.session_state.get("data_test", 0.1)),
            "seed": int(st.session_state.get("data_seed", 0))}


def groups_frame(groups: list[dict]) -> pd.DataFrame:
    """Duplicate groups (files, classes, splits lists) as a readable table."""
    return pd.DataFrame({
        "files": [", ".join(g["files"]) for g in groups],
        "classes": [", ".join(g["classes"]) for g in groups],
        "splits": [", ".join(g["splits"]) for g in groups],
    })


def skipped_table(skipped: list[dict]) -> None:
    """Skipped files and why, reasons wrapped in full (a grid would cut them at its edge).

    `st.table` wraps long cells but reads them as Markdown: names and reasons go
    through `plain`, so they show as typed.
    """
    rows = pd.DataFrame({"File": [plain(s["file"]) for s in skipped],
                         "Reason": [plain(s["reason"]) for s in skipped]})
    st.table(rows, hide_index=True,
             height="content" if len(rows) <= SKIPPED_ROWS_SHOWN else SKIPPED_HEIGHT_PX)


def health_section(info: dict) -> None:
    health = info["health"]
    st.markdown("**Health**")
    ratio = health["imbalance_ratio"]
    duplicates, leakage, skipped = health["duplicates"], health["leakage"], info["skipped"]
    cols = st.columns(3)
    cols[0].metric("Imbalance", f"{ratio:.1f}×" if ratio else "—",
                   help="Largest class size divided by the smallest.")
    cols[1].metric("Duplicates", len(duplicates),
                   help="Groups of images with identical content (same hash).")
    cols[2].metric("Leakage", len(leakage),
                   help="Duplicate groups spread over more than one split: they make "
                        "validation and test scores look better than they are.")
    sizes = health["sizes"]
    if sizes["width"]["median"]:
        st.caption(f"Image sizes: median {sizes['width']['median']:g}×"
                   f"{sizes['height']['median']:g} px, {sizes['n_distinct']} distinct size(s). "
                   "Each run resizes them to its own image size.")
    for note in health["warnings"]:
        st.warning(plain(note), icon=":material/warning:")
    if duplicates:
        with st.expander(f"Duplicate groups ({len(duplicates)})"):
            st.dataframe(groups_frame(duplicates), key="data_duplicates", hide_index=True)
    if skipped:
        with st.expander(f"Skipped files ({len(skipped)})"):
            skipped_table(skipped)
    if not (health["warnings"] or duplicates or skipped):
        st.success("No skipped files, duplicates or leakage.", icon=":material/verified:")


def delete_section(ws: Workspace, actor: auth.Actor, name: str, n_images: int,
                   owner: str | None) -> None:
    """Delete, after a confirmation; the dataset's owner's or an admin's."""
    what = "delete this dataset"
    refused = denied(actor, auth.MANAGE_OWN, owner, what)
    delete = st.button("Delete dataset…", key="data_delete", icon=":material/delete:",
                       disabled=refused is not None, help=refused)
    if delete and permitted(actor, auth.MANAGE_OWN, owner, what):
        st.session_state["data_confirm_delete"] = name
    if st.session_state.get("data_confirm_delete") != name:
        return
    st.warning(f"Delete **{plain(name)}** and its {n_images} images? Runs trained on it "
               "keep their results, but cannot be resumed or cloned onto it.")
    yes, no, _ = st.columns([1, 1, 4])
    if yes.button("Yes, delete", key="data_delete_yes", type="primary"):
        st.session_state.pop("data_confirm_delete", None)
        if not permitted(actor, auth.MANAGE_OWN, owner, what):
            return
        try:
            data.delete_dataset(name, ws=ws)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        dataset_details.clear()
        dataset_samples.clear()
        flash("data", "info", f"Deleted dataset {plain(name)}.")
        st.rerun()
    if no.button("Cancel", key="data_delete_no"):
        st.session_state.pop("data_confirm_delete", None)
        st.rerun()


def dataset_section(ws: Workspace, actor: auth.Actor, row: dict) -> None:
    try:
        version = row["summary"].get("fingerprint")
        info = dataset_details(str(ws.root), row["name"], row["created"], version)
    except TLCoreError as exc:
        st.error(plain(exc))
        st.divider()
        # A broken dataset can still go.
        delete_section(ws, actor, row["name"], row["n_images"], row["owner"])
        return
    cols = st.columns(5)
    cols[0].metric("Images", info["n_images"])
    cols[1].metric("Classes", len(info["classes"]))
    for col, split in zip(cols[2:], data.SPLITS, strict=True):
        col.metric(split.capitalize(), info["splits"].get(split, 0))
    split = info["split"]
    owner = f" · imported by {plain(row['owner'])}" if row["owner"] else ""
    st.caption(f"Source: {plain(info['source'])} · split: validation {split['val']:g}, "
               f"test {split['test']:g}, seed {split['seed']}{owner}")

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(charts.class_balance(charts.counts_frame(info["counts"])),
                        key="data_balance", theme=None)
    with right:
        health_section(info)

    st.markdown("**Samples**")
    samples = dataset_samples(str(ws.root), row["name"], row["created"], version)
    if any(not Path(f).is_file() for files in samples.values() for f in files):
        st.warning("Some images of this dataset are missing on disk; delete it and import it "
                   "again.", icon=":material/broken_image:")
        samples = {label: [f for f in files if Path(f).is_file()]
                   for label, files in samples.items()}
    for label in list(samples)[:MAX_SAMPLE_CLASSES]:
        name_col, images_col = st.columns([1, 7], vertical_alignment="center")
        name_col.markdown(f"**{plain(label)}**")
        if samples[label]:
            images_col.image(samples[label], width=80)
    if len(samples) > MAX_SAMPLE_CLASSES:
        st.caption(f"Showing {MAX_SAMPLE_CLASSES} of {len(samples)} classes.")
    st.divider()
    data_edit.edit_section(ws, actor, row, info)
    st.divider()
    review_section(ws, actor, info, row["owner"])
    st.divider()
    delete_section(ws, actor, info["name"], info["n_images"], row["owner"])


def render() -> None:
    ws = Workspace.from_env()
    actor = page_actor(ws)
    st.title("Data")
    st.caption("Bring in images sorted into one folder per class, or build a dataset class by "
               "class from uploads and the camera. Each dataset is split into "
               "train / validation / test once, and every run on it shares that split.")
    show_flash("data")
    job = st.session_state.get("data_import")
    slot = st.empty()
    datasets_view(ws, actor, busy=job is not None)
    if job:
        # Last, so the whole page is drawn (and usable) while the import runs.
        follow_import(slot, job)


def datasets_view(ws: Workspace, actor: auth.Actor, busy: bool) -> None:
    pending = st.session_state.pop("data_pending_select", None)
    if pending:
        st.session_state["data_selected"] = pending
    try:
        rows = data.list_datasets(ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    names = [r["name"] for r in rows]
    # Without the role to import, the ways in are left out and the reason said once.
    refused = denied(actor, auth.IMPORT)
    if refused is not None:
        if not rows:
            st.info("No datasets yet.", icon=":material/waving_hand:")
        st.caption(f":material/lock: {refused}")
    else:
        if not rows:
            st.info("No datasets yet. Start with the demo dataset, or add your own images "
                    "below.", icon=":material/waving_hand:")
            demo_button(ws, actor, names, busy)
        add_dataset_section(ws, actor, names, busy)
    if not rows:
        return

    st.subheader("Datasets")
    table = pd.DataFrame({
        "name": names,
        "images": [r["n_images"] for r in rows],
        "classes": [", ".join(r["classes"]) for r in rows],
        "created": pd.to_datetime([r["created"] for r in rows], unit="s").round("s"),
    })
    if any(r["owner"] for r in rows):  # shared use: who imported each
        table.insert(1, "owner", [auth.owner_label(r["owner"]) for r in rows])
    st.dataframe(table, key="data_table", hide_index=True,
                 height=min(300, 38 + 35 * len(rows)))
    if st.session_state.get("data_selected") not in names:
        st.session_state["data_selected"] = names[0]
    selected = st.selectbox("Dataset", names, key="data_selected")
    dataset_section(ws, actor, rows[names.index(selected)])


render()
