"""Train: pick a dataset and preset, adjust the run config, launch, and watch runs live.

Launching needs the member role, a weights file named by its server path the admin
role; cancelling and resuming a run are its owner's or an admin's (`tlcore.auth`).
The form's state lives in `tlcore.ui.train_form`, its tabs in
`tlcore.ui.train_widgets`, the model preview in `tlcore.ui.train_preview` and the
runs panel in `tlcore.ui.live_panel`.
"""

from __future__ import annotations

import streamlit as st

from tlcore import auth, config
from tlcore import data as datasets_api
from tlcore.errors import TLCoreError
from tlcore.store import RunStore
from tlcore.ui import train_form as form
from tlcore.ui.access import denied, page_actor
from tlcore.ui.flash import show_flash
from tlcore.ui.live_panel import show_launch_status, show_runs
from tlcore.ui.text import plain
from tlcore.ui.train_preview import launch_warnings, preview
from tlcore.ui.train_widgets import form_tabs
from tlcore.vgg16 import backbones
from tlcore.workspace import Workspace


def render() -> None:
    """The Train page: the config form, its preview and Launch, then the runs panel."""
    ws = Workspace.from_env()
    actor = page_actor(ws)
    st.title("Train")
    st.caption("VGG16 pretrained on ImageNet plus a small dense head: train the head first, "
               "then optionally fine-tune the last blocks. Runs train in the background; "
               "leave the page whenever you like.")
    try:
        store = RunStore(ws)  # opening reads the database: an unreadable one stops here
        rows = datasets_api.list_datasets(ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    names = [r["name"] for r in rows]
    form.init_form(names)
    show_flash("train")

    if not names:
        st.info("No datasets yet — create the demo dataset or upload a zip on the Data page, "
                "then come back here.", icon=":material/waving_hand:")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/photo_library:")
    else:
        # Checked before drawing: the tab labels and each widget show the problems.
        values, errors = form.form_settings(ws, actor)
        st.session_state[form.ERRORS_KEY] = errors
        cfg, problem = None, None
        if not errors:
            try:
                cfg = form.build_config(values)
            except TLCoreError as exc:
                problem = str(exc)
        left, right = st.columns([3, 2], gap="large")
        with left:
            c1, c2 = st.columns(2)
            c1.selectbox("Dataset", names, key=form.PREFIX + "dataset")
            form.field_error(c1, "dataset", "Dataset")
            label = form.preset_label(values)
            st.session_state[form.PRESET_KEY] = label
            c2.selectbox("Preset", [*config.PRESETS, *([] if label in config.PRESETS else [label])],
                         key=form.PRESET_KEY, on_change=form.apply_preset,
                         help="A starting point; every setting below stays editable.")
            form_tabs(ws, store, actor, errors)
        form.save_form()
        if cfg is not None:
            try:
                classes = rows[names.index(cfg.dataset)]["classes"]
                backbones.check_model_size(cfg, max(2, len(classes)))
            except TLCoreError as exc:
                cfg, problem = None, str(exc)
        if cfg is not None:
            st.session_state[form.LAST_VALID_KEY] = cfg.to_dict()
            form.share_form(cfg)
            launch_warnings(ws, cfg, rows[names.index(cfg.dataset)])
        with right:
            preview(cfg, rows)
        c1, c2, c3 = st.columns([2, 1, 3], vertical_alignment="bottom")
        c1.text_input("Run name (optional)", key=form.NAME_KEY,
                      placeholder="e.g. gap-head-lr1e-3")
        refused = denied(actor, auth.LAUNCH)
        if c2.button("Launch run", key="train_launch", type="primary",
                     disabled=cfg is None or refused is not None, help=refused,
                     icon=":material/rocket_launch:", width="stretch"):
            form.launch(ws, cfg, actor)
        if problem:
            c3.error(plain(problem), icon=":material/block:")
        elif errors:
            c3.caption(f":red[:material/block: Fix the {len(errors)} setting"
                       f"{'s' if len(errors) != 1 else ''} marked "
                       f"{form.ERROR_MARK.strip()} to launch.]")
        # The launched run's state by the button: the runs panel is below the fold.
        with st.container() if problem or errors else c3:
            show_launch_status(ws)
    st.divider()
    show_runs(ws, store, actor)


render()
