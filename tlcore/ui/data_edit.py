"""The Data page's studio: create a dataset empty, grow it by upload or camera, edit it.

Per class: add images by upload (many at once) or by camera (hold to record a
burst of frames, added in one version: `camera_burst`), a gallery where images
are removed or moved to another class, and the class's own add / rename /
remove. Every edit makes a new dataset version (`tlcore.data.versions`); the
Versions tab lists them with what each changed. "Train again" queues a run on
the dataset as it is now with its latest run's settings (`retrain`); "Train on
this dataset" opens the Train form on it. Creating needs the import role,
editing the dataset's owner or an admin (`tlcore.auth`), as deleting does.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import pandas as pd
import streamlit as st

from tlcore import auth, config, data
from tlcore.errors import TLCoreError
from tlcore.ui import camera_burst, retrain, train_form
from tlcore.ui.access import denied, permitted
from tlcore.ui.flash import flash, show_flash
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

PAGE = "data_edit"  # the flash messages of this section
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
TABS = ("Upload", "Camera", "Gallery", "Classes", "Versions")
GALLERY_PAGE = 24
GALLERY_COLUMNS = 6
VERSIONS_SHOWN = 10  # versions listed in full; more scroll inside the table
EDIT_WHAT = "edit this dataset"
# The uploader's key changes after each addition, which empties it for the next files.
UPLOAD_ROUND = "data_edit_upload_round"
CLASS_KEY = "data_edit_class"
BURST_KEY = "data_edit_burst"  # the hold-to-record camera (`camera_burst`)
CAPTURES = "data_edit_captures"  # {"<dataset>/<class>": captures added this session}


def new_dataset_form(ws: Workspace, actor: auth.Actor, busy: bool, split: dict[str, Any]) -> None:
    """Name and class names of a new, empty dataset, and its Create button.

    Args:
        ws: The workspace.
        actor: Who creates it: their role must allow importing.
        busy: An import is running (the button waits for it).
        split: `val`, `test` and `seed` from the page's split settings.
    """
    st.caption("Start from nothing: name the dataset and its classes, then add images "
               "to each class by upload or with the camera below.")
    name = st.text_input("Dataset name", key="data_new_name",
                         help="Letters, digits, '_', '-' or '.'")
    classes = st.text_input("Class names", key="data_new_classes", placeholder="cat, dog",
                            help="Separated by commas; more can be added later.")
    refused = denied(actor, auth.IMPORT)
    if st.button("Create dataset", key="data_new_create", type="primary", help=refused,
                 disabled=busy or refused is not None or not name.strip()):
        if not permitted(actor, auth.IMPORT):
            return
        names = [c.strip() for c in classes.split(",") if c.strip()]
        try:
            info = data.create_dataset(name.strip(), names, ws=ws, owner=actor.user, **split)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        flash("data", "success", f"Created **{plain(info['name'])}** with "
                                 f"{len(info['classes'])} classes. Add images to each class "
                                 "below.")
        st.session_state["data_pending_select"] = info["name"]
        st.rerun()


def edit_section(ws: Workspace, actor: auth.Actor, row: dict[str, Any],
                 info: dict[str, Any]) -> None:
    """Grow and edit the selected dataset, one class at a time, list its versions, train again."""
    name, classes = info["name"], info["classes"]
    refused = denied(actor, auth.MANAGE_OWN, row["owner"], EDIT_WHAT)
    st.markdown("**Build and edit**")
    show_flash(PAGE)
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    chosen = _class_picker(left, classes)
    retrain.train_again_button(ws, actor, name, PAGE, where=middle)
    if right.button("Train on this dataset", key="data_edit_train",
                    icon=":material/model_training:", width="stretch",
                    help="Open the Train form on this dataset, to change settings first."):
        open_train(name)
    retrain.follow_link(name)
    if chosen is not None:
        counts = info["counts"][chosen]
        st.caption(f"{plain(chosen)}: {counts['total']} image{'s' if counts['total'] != 1 else ''}"
                   f" (train {counts['train']}, validation {counts['val']}, test "
                   f"{counts['test']})")
    if refused:
        st.caption(f":material/lock: {refused}")
    tabs = st.tabs(TABS, key="data_edit_tab", on_change="rerun")
    for tab, draw in zip(tabs, (_upload_tab, _camera_tab, _gallery_tab), strict=False):
        if tab.open:
            with tab:
                if chosen is None:
                    st.info("Add a class first, under Classes.")
                else:
                    draw(ws, actor, row, name, chosen, classes, refused)
    if tabs[3].open:
        with tabs[3]:
            _classes_tab(ws, actor, row, name, classes, refused)
    if tabs[4].open:
        with tabs[4]:
            versions_table(ws, name)


def _class_picker(where: Any, classes: list[str]) -> str | None:
    """The class the tabs act on: one click each (pills), the first one to begin with."""
    if st.session_state.get(CLASS_KEY) not in classes:  # renamed, removed, another dataset
        st.session_state.pop(CLASS_KEY, None)
    if not classes:
        where.caption("No classes yet: add one under Classes.")
        return None
    return where.pills("Class", classes, key=CLASS_KEY, default=classes[0], required=True,
                       format_func=plain)


def open_train(name: str) -> None:
    """Switch to the Train page with `name` as the form's dataset (its other settings kept)."""
    saved = (st.session_state.get(train_form.SAVED_KEY)
             or train_form.form_values(config.preset(config.DEFAULT_PRESET, name)))
    st.session_state[train_form.SAVED_KEY] = {**saved, train_form.PREFIX + "dataset": name}
    st.session_state.pop(train_form.PREFIX + "image_size", None)  # reloads the kept form
    st.switch_page(train_form.PAGE)


def _round_key(base: str, round_key: str) -> str:
    return f"{base}_{st.session_state.get(round_key, 0)}"


def _allowed(actor: auth.Actor, owner: str | None) -> bool:
    return permitted(actor, auth.MANAGE_OWN, owner, EDIT_WHAT)


def _added_message(added: data.Added, class_name: str) -> tuple[str, str]:
    """The flash of an addition: kind and text (skipped files said too)."""
    n = len(added.ids)
    text = (f"Added {n} image{'s' if n != 1 else ''} to {plain(class_name)} "
            f"(version {added.version[:12]}).")
    if added.skipped:
        return "info", f"{text} {plain(data.describe_skipped(added.skipped))}"
    return "success", text


def _upload_tab(ws: Workspace, actor: auth.Actor, row: dict[str, Any], name: str,
                class_name: str, classes: list[str], refused: str | None) -> None:
    key = _round_key("data_edit_upload", UPLOAD_ROUND)
    files = st.file_uploader(f"Images for {class_name}", type=IMAGE_TYPES,
                             accept_multiple_files=True, key=key, disabled=refused is not None,
                             help="Choose or drop many at once; each is checked and stored "
                                  "as an import stores it.")
    label = f"Add {len(files)} image{'s' if len(files) != 1 else ''}" if files else "Add images"
    if st.button(label, key="data_edit_upload_add", type="primary",
                 disabled=not files or refused is not None):
        if not _allowed(actor, row["owner"]):
            return
        try:
            added = data.add_images(name, class_name, [(f.name, f.getvalue()) for f in files],
                                    ws=ws)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        flash(PAGE, *_added_message(added, class_name))
        st.session_state[UPLOAD_ROUND] = st.session_state.get(UPLOAD_ROUND, 0) + 1
        st.rerun()


def _camera_tab(ws: Workspace, actor: auth.Actor, row: dict[str, Any], name: str,
                class_name: str, classes: list[str], refused: str | None) -> None:
    st.caption(f"Hold the button to record {plain(class_name)}: every frame of a hold is "
               "added to the class at once, in one version. A tap takes one photo.")
    # The element shows text as typed: the reason itself is in the lock line above.
    off = "Recording is off: you may not edit this dataset." if refused else None
    camera_burst.recorder(BURST_KEY, disabled=off, on_frames=functools.partial(
        _take_burst, ws, actor, row["owner"], name, class_name))
    done = st.session_state.get(CAPTURES, {}).get(f"{name}/{class_name}", 0)
    st.caption(f"{done} capture{'s' if done != 1 else ''} added to {plain(class_name)} "
               "this session.")


def _take_burst(ws: Workspace, actor: auth.Actor, owner: str | None, name: str,
                class_name: str) -> None:
    """Add the frames of the hold just ended (a callback: it runs before the page does)."""
    add_captures(ws, actor, owner, name, class_name, camera_burst.frames(BURST_KEY))


def add_captures(ws: Workspace, actor: auth.Actor, owner: str | None, name: str,
                 class_name: str, payload: Any) -> None:
    """Add one hold's frames to a class in one version, and say how it went on the next run.

    Args:
        ws: The workspace.
        actor: Who records: they must be allowed to edit the dataset.
        owner: The dataset's owner.
        name: The dataset.
        class_name: The class the frames go to.
        payload: What the recorder sent (`camera_burst.decode_frames`); an empty
            hold adds nothing.
    """
    why = denied(actor, auth.MANAGE_OWN, owner, EDIT_WHAT)
    if why:
        flash(PAGE, "error", why)
        return
    try:
        shots = camera_burst.decode_frames(payload)
        if not shots:
            return
        added = data.add_images(name, class_name, shots, ws=ws)
    except TLCoreError as exc:
        flash(PAGE, "error", plain(exc))
        return
    n = len(added.ids)
    counts = st.session_state.setdefault(CAPTURES, {})
    counts[f"{name}/{class_name}"] = counts.get(f"{name}/{class_name}", 0) + n
    text = (f"Added {n} capture{'s' if n != 1 else ''} to {plain(class_name)} "
            f"(version {added.version[:12]}).")
    if added.skipped:
        flash(PAGE, "info", f"{text} {plain(data.describe_skipped(added.skipped))}")
    else:
        flash(PAGE, "success", text)


def _gallery_tab(ws: Workspace, actor: auth.Actor, row: dict[str, Any], name: str,
                 class_name: str, classes: list[str], refused: str | None) -> None:
    try:
        images = data.list_images(name, ws=ws, class_name=class_name)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    if not images:
        st.caption("No images in this class yet: add some by upload or with the camera.")
        return
    pages = -(-len(images) // GALLERY_PAGE)
    page = st.pagination(pages, key="data_edit_gallery_page") if pages > 1 else 1
    shown = images[(page - 1) * GALLERY_PAGE:page * GALLERY_PAGE]
    grid = st.columns(GALLERY_COLUMNS)
    for i, im in enumerate(shown):
        with grid[i % GALLERY_COLUMNS]:
            st.image(im["path"], width="stretch")
            st.checkbox(f"{im['id'][:8]} · {im['split']}", key=f"data_edit_pick_{im['id']}",
                        disabled=refused is not None, help=plain(im["source"]))
    picked = [im["id"] for im in shown if st.session_state.get(f"data_edit_pick_{im['id']}")]
    others = [c for c in classes if c != class_name]
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    target = left.selectbox("Move to", others, key="data_edit_move_to",
                            disabled=not others or refused is not None)
    move = middle.button(f"Move {len(picked)}", key="data_edit_move", width="stretch",
                         disabled=not picked or target is None or refused is not None)
    remove = right.button(f"Remove {len(picked)}", key="data_edit_remove", width="stretch",
                          icon=":material/delete:", disabled=not picked or refused is not None)
    if (move or remove) and _allowed(actor, row["owner"]):
        fixes = {"remove": picked} if remove else {"relabel": dict.fromkeys(picked, target)}
        try:
            version = data.apply_fixes(name, ws=ws, **fixes)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        done = "Removed" if remove else f"Moved to {plain(target)}:"
        flash(PAGE, "success", f"{done} {len(picked)} image{'s' if len(picked) != 1 else ''} "
                               f"(version {version[:12]}).")
        st.rerun()


def _classes_tab(ws: Workspace, actor: auth.Actor, row: dict[str, Any], name: str,
                 classes: list[str], refused: str | None) -> None:
    off = refused is not None
    new = st.text_input("New class", key="data_edit_new_class", disabled=off)
    if st.button("Add class", key="data_edit_add_class", disabled=off or not new.strip()):
        _class_edit(actor, row, lambda: data.add_class(name, new.strip(), ws=ws),
                    f"Added class {plain(new.strip())}.")
    if not classes:
        return
    st.divider()
    old = st.selectbox("Class to change", classes, key="data_edit_old_class", disabled=off)
    renamed = st.text_input("New name", key="data_edit_rename_to", disabled=off)
    left, right = st.columns(2)
    if left.button("Rename class", key="data_edit_rename", disabled=off or not renamed.strip()):
        _class_edit(actor, row, lambda: data.rename_class(name, old, renamed.strip(), ws=ws),
                    f"Renamed {plain(old)} to {plain(renamed.strip())}.")
    if right.button("Remove class and its images", key="data_edit_remove_class",
                    icon=":material/delete:", disabled=off):
        _class_edit(actor, row, lambda: data.remove_class(name, old, ws=ws),
                    f"Removed class {plain(old)}; earlier versions keep it.")


def _class_edit(actor: auth.Actor, row: dict[str, Any], edit: Any, message: str) -> None:
    if not _allowed(actor, row["owner"]):
        return
    try:
        version = edit()
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    flash(PAGE, "success", f"{message} (version {version[:12]})")
    st.rerun()


def versions_table(ws: Workspace, name: str) -> None:
    """The dataset's versions, newest first, with what each changed."""
    try:
        rows = data.list_versions(name, ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    rows = rows[::-1]
    # A table wraps each change in full; its cells are Markdown, so names go through plain.
    st.table(pd.DataFrame({
        "Version": [r["id"][:12] + (" (now)" if r["head"] else "") for r in rows],
        "Created": [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))
                    for r in rows],
        "Images": [r["n_images"] for r in rows],
        "Changes": [plain(r["summary"]) for r in rows],
    }), hide_index=True, height="content" if len(rows) <= VERSIONS_SHOWN else 420)
    st.caption("Each edit makes a new version; a run keeps the version it trained on "
               "(`python -m tlcore runs show RUN --json` names it).")
