"""Train: pick a dataset and preset, adjust the run config, launch, and watch runs live.

Launching needs the member role, a weights file named by its server path the admin
role; cancelling and resuming a run are its owner's or an admin's (`tlcore.auth`).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pandas as pd
import streamlit as st

from tlcore import auth, backend, config
from tlcore import data as datasets_api
from tlcore.charts import runs as charts
from tlcore.config import advice
from tlcore.errors import TLCoreError
from tlcore.runs import liveness, logs
from tlcore.runs.launch import launch as launch_run
from tlcore.store import (
    ACTIVE_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STAGE_FEATURES,
    RunStore,
)
from tlcore.ui.access import denied, page_actor, permitted
from tlcore.ui.config_widgets import number_input_kwargs, selectbox_kwargs, slider_kwargs
from tlcore.ui.device import device_summary
from tlcore.ui.flash import flash, show_flash
from tlcore.ui.predict import UPLOAD_TYPES, classify, show_prediction
from tlcore.ui.status import STATUS_ICONS, status_badge
from tlcore.ui.text import percent, plain
from tlcore.vgg16 import backbones
from tlcore.workers import runlog
from tlcore.workspace import Workspace, check_server_path

LIVE_REFRESH_S = 1.5
IDLE_CHECK_S = 3.0  # how often an idle page looks for a run queued elsewhere
LOG_LINES = 40
LOG_SCAN_LINES = 400  # raw lines read to find the run's own last LOG_LINES
PREFIX = "cfg."  # session-state keys of the config form
SAVED_KEY = "train_saved"  # the form's values, kept while another page is open
PREFILL_KEY = "train_prefill"  # a config dict to load (set by "Clone and edit")
# The base's start and freeze policy: a weights source, except "scratch" (weights none,
# every layer trained) and "none" (weights none, base frozen).
SCRATCH_MODE = "scratch"
TRY_KEY = "train_try"  # the last "Try it" prediction: run, picture digest, result
PREFILL_NAME_KEY = "train_prefill_name"  # the cloned run's name (set with PREFILL_KEY)
CLONED_KEY = "train_cloned"  # {"name", "settings"} of the clone the form was loaded from
LAST_VALID_KEY = "train_last_valid"  # the last valid config dict: the preview falls back to it
ERRORS_KEY = "train_field_errors"  # {config key: message} of the form as it stands
NAME_KEY = "train_run_name"
LINK_PARAM = "cfg"  # the form's settings in the URL (config.link_token): reload and share
NAME_PARAM = "name"  # the run name in the URL
CUSTOM = "Custom"
SERVER_WEIGHTS = "train from a weights file named by its path on the server"
TABS = ("Base & weights", "Head", "Optimizer", "Fine-tuning", "Augmentation")
TAB_OF = {"image_size": 0, "base": 0, "head": 1, "train": 2, "fine_tune": 3, "augment": 4}
ERROR_MARK = " ⚠"
WEIGHT_MODES = {
    "imagenet": "ImageNet (pretrained)",
    SCRATCH_MODE: "From scratch (train every layer)",
    "none": "Random frozen features (not a from-scratch baseline)",
    "file": "Weights file on the server",
    "run": "An earlier run's base",
}


# ---- form state ------------------------------------------------------------
def form_values(cfg: config.RunConfig) -> dict[str, Any]:
    """Session-state values of the form widgets for `cfg`."""
    values = {PREFIX + k: v for k, v in cfg.flat().items()
              if k not in ("base.name", "base.weights")}
    values[PREFIX + "head.dense"] = ", ".join(str(u) for u in cfg.head.dense)
    source = cfg.base.source
    values[PREFIX + "weights_mode"] = SCRATCH_MODE if cfg.base.from_scratch else source.kind
    values[PREFIX + "weights_file"] = source.path or ""
    values[PREFIX + "weights_run"] = source.run_id
    return values


def load_form(values: dict[str, Any], keep_dataset: bool = False) -> None:
    for key, value in values.items():
        if keep_dataset and key == PREFIX + "dataset":
            continue
        st.session_state[key] = value


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    """Flat config values without the dataset: what a preset or a clone fixes."""
    return {k: v for k, v in values.items() if k not in ("dataset", "base.name")}


def apply_preset() -> None:
    """Preset changed: reload every knob from it, keeping the chosen dataset."""
    name = st.session_state["train_preset"]
    if name not in config.PRESETS:  # "Custom" or "Cloned from ...": nothing to load
        return
    dataset = st.session_state.get(PREFIX + "dataset") or "dataset"
    load_form(form_values(config.preset(name, dataset)), keep_dataset=True)
    st.session_state.pop(CLONED_KEY, None)


def preset_label(values: dict[str, Any]) -> str:
    """What the preset selector shows: the clone or preset the form holds, else "Custom"."""
    current = comparable(values)
    cloned = st.session_state.get(CLONED_KEY)
    if cloned and cloned["settings"] == current:
        return f"Cloned from {cloned['name']}"
    dataset = values.get("dataset") or "dataset"
    for name in config.PRESETS:
        if comparable(config.preset(name, dataset).flat()) == current:
            return name
    return CUSTOM


def init_form(names: list[str]) -> None:
    """Fill the form on first visit, after another page, from a link or "Clone and edit".

    Order: a clone; else, when the form is not on screen yet, the settings in the
    URL (a reload or a shared link), the values kept from this session's last
    visit, or the default preset. A link that cannot be used is refused with a
    warning and changes nothing.
    """
    prefill = st.session_state.pop(PREFILL_KEY, None)
    cloned_from = st.session_state.pop(PREFILL_NAME_KEY, None)
    if prefill is not None:
        try:
            cfg = config.RunConfig.from_dict(prefill)
        except TLCoreError as exc:
            flash("train", "error", plain(exc))
        else:
            load_form(form_values(cfg))
            st.session_state[CLONED_KEY] = {"name": cloned_from or "an earlier run",
                                            "settings": comparable(cfg.flat())}
            flash("train", "success", "Loaded the cloned run's settings. Edit and launch.")
    elif PREFIX + "image_size" not in st.session_state:
        linked = None
        token = st.query_params.get(LINK_PARAM)
        if token:
            try:
                linked = config.from_link_token(token)
            except TLCoreError as exc:
                st.warning(f"The settings in this link could not be used, so the form shows "
                           f"the usual ones. {plain(exc)}", icon=":material/link_off:")
        saved = st.session_state.get(SAVED_KEY)
        if linked is not None:
            load_form(form_values(linked))
            st.session_state[NAME_KEY] = st.query_params.get(NAME_PARAM, "")
        elif saved:
            load_form(saved)
        else:
            load_form(form_values(config.preset(config.DEFAULT_PRESET,
                                                 names[0] if names else "dataset")))
            st.session_state[NAME_KEY] = st.query_params.get(NAME_PARAM, "")
    if st.session_state.get(PREFIX + "dataset") not in names and names:
        st.session_state[PREFIX + "dataset"] = names[0]


def save_form() -> None:
    """Keep the form (and the run name) for this session's next visit to the page."""
    st.session_state[SAVED_KEY] = {k: v for k, v in st.session_state.items()
                                   if isinstance(k, str) and (k.startswith(PREFIX)
                                                              or k == NAME_KEY)}


def share_form(cfg: config.RunConfig) -> None:
    """Put `cfg` and the run name in the URL, so a reload or a shared link restores them."""
    params = {LINK_PARAM: config.link_token(cfg),
              NAME_PARAM: st.session_state.get(NAME_KEY, "").strip()}
    for key, value in params.items():
        if not value:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def parse_dense(text: str) -> list[Any]:
    """'256, 128' -> [256, 128]; a bad token stays text so the check can quote it."""
    out: list[Any] = []
    for token in (t.strip() for t in str(text).replace(";", ",").split(",")):
        if token:
            out.append(int(token) if token.lstrip("-").isdigit() else token)
    return out


def form_settings(ws: Workspace, actor: auth.Actor) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values as flat config keys, and every problem with them.

    Args:
        ws: The workspace.
        actor: Who uses the page: a weights file named by its server path needs the
            role that may use server paths.

    Returns:
        `(values, errors)`: `values` as `{"head.dense": [256], ...}`, `errors` as
        `{config key: message in everyday words}` (see `config.field_errors`),
        empty when the form describes a valid config.
    """
    s = st.session_state
    errors: dict[str, str] = {}
    # Only the chosen mode's widget is drawn, so the other's state may be gone.
    mode = s[PREFIX + "weights_mode"]
    path = s.get(PREFIX + "weights_file", "").strip()
    run_id = s.get(PREFIX + "weights_run") or ""
    if mode == "file":
        try:
            # Shown under the path like any other problem, so Launch stays off.
            auth.require(actor, auth.SERVER_IMPORT, what=SERVER_WEIGHTS)
            if not path:
                errors["base.weights"] = "type the path of a VGG16 weights file on the server"
            else:
                path = str(check_server_path(path, ws))
        except TLCoreError as exc:
            errors["base.weights"] = str(exc)
    elif mode == "run" and not run_id:
        errors["base.weights"] = "choose a completed run"
    source = config.WeightsSource(kind="none" if mode == SCRATCH_MODE else mode, path=path,
                                  run_id=run_id)
    trainable = mode == SCRATCH_MODE or (
        mode != "none" and bool(s.get(PREFIX + "base.trainable", False)))
    values: dict[str, Any] = {"dataset": s.get(PREFIX + "dataset") or "",
                              "base.weights": source.text, "base.trainable": trainable}
    for key in config.field_specs():
        if PREFIX + key in s and key != "dataset" and not key.startswith("base."):
            values[key] = s[PREFIX + key]
    values["head.dense"] = parse_dense(s[PREFIX + "head.dense"])
    errors.update(config.field_errors({k: v for k, v in values.items() if k not in errors}))
    return values, errors


def build_config(values: dict[str, Any]) -> config.RunConfig:
    """The RunConfig of flat form values without errors (see `form_settings`).

    Raises:
        ConfigError: with the config's own message when the values do not fit together.
    """
    return config.RunConfig.from_dict(config.apply_overrides({}, values))


def field_error(where: Any, key: str, label: str) -> None:
    """Under a widget: what is wrong with config field `key`, if anything, in plain words."""
    message = st.session_state.get(ERRORS_KEY, {}).get(key)
    if message:
        where.caption(f":red[:material/error: {plain(label)}: {plain(message)}]")


def tab_labels(errors: dict[str, str]) -> list[str]:
    """The form's tab names, marked where a field inside has a problem.

    The tabs are keyed: a label that changes would otherwise send the browser
    back to the first tab, away from the field just typed into.
    """
    bad = {TAB_OF.get(key.partition(".")[0]) for key in errors}
    labels = [name + (ERROR_MARK if i in bad else "") for i, name in enumerate(TABS)]
    open_tab = str(st.session_state.get("train_tabs") or "").removesuffix(ERROR_MARK)
    if open_tab in TABS:
        st.session_state["train_tabs"] = labels[TABS.index(open_tab)]
    return labels


# ---- the form ----------------------------------------------------------------
# Each config widget takes its limits, options and tooltip from the field's declaration.
def number(where: Any, label: str, name: str, step: int | float, **extra: Any) -> None:
    """A number input for config field `name` (e.g. "train.epochs") in `where`."""
    where.number_input(label, key=PREFIX + name,
                       **number_input_kwargs(config.field_spec(name), step), **extra)
    field_error(where, name, label)


def slider(where: Any, label: str, name: str, step: int | float) -> None:
    """A slider for config field `name` in `where`."""
    where.slider(label, key=PREFIX + name, **slider_kwargs(
        config.field_spec(name), step, st.session_state.get(PREFIX + name)))
    field_error(where, name, label)


def select(where: Any, label: str, name: str) -> None:
    """A selectbox over the choices of config field `name` in `where`."""
    where.selectbox(label, key=PREFIX + name, **selectbox_kwargs(config.field_spec(name)))
    field_error(where, name, label)


def reset_trainable() -> None:
    """Weights mode changed: a pretrained base starts frozen again (the toggle is opt-in)."""
    st.session_state[PREFIX + "base.trainable"] = False


def base_tab(ws: Workspace, store: RunStore, actor: auth.Actor) -> None:
    st.caption("VGG16's convolutional base (5 blocks, 14.7 M parameters) turns each image into "
               "features; the head on top learns your classes.")
    number(st, "Image size (px)", "image_size", step=16)
    mode = st.selectbox("Pretrained weights", list(WEIGHT_MODES), key=PREFIX + "weights_mode",
                        format_func=WEIGHT_MODES.get, on_change=reset_trainable,
                        help="ImageNet weights transfer what VGG16 learned on 1.2 M photos. "
                             "From scratch trains every layer from random weights: the "
                             "baseline that shows whether transfer helps. Random frozen "
                             "features keep an untrained base frozen and train only the head.")
    if mode == SCRATCH_MODE:
        st.caption("Every layer starts from random weights and trains from the first epoch, "
                   "so each epoch runs the whole network. The preset **From scratch "
                   "(baseline)** has settings that suit it (Adam at 1e-4, 30 epochs).")
    elif mode == "none":
        st.caption("The base keeps random, untrained weights and stays frozen; only the head "
                   "learns. Beating this says little: compare with **From scratch** instead.")
    else:
        st.toggle("Train the whole base from the first epoch", key=PREFIX + "base.trainable",
                  help=config.field_spec("base.trainable").help)
    if mode == "imagenet":
        weights_panel(ws, actor)
    elif mode == "file":
        st.text_input("Weights file path", key=PREFIX + "weights_file",
                      placeholder=str(ws.weights_dir / "vgg16_notop.weights.h5"),
                      help="A VGG16 notop weights file (.h5 or .weights.h5) on the server, "
                           "inside the workspace's weights folder or another folder the "
                           "operator allows (TLCORE_SERVER_ROOTS).")
        field_error(st, "base.weights", "Weights file path")
    elif mode == "run":
        done = [r for r in store.list_runs(statuses=[COMPLETED])]
        labels = charts.run_labels(done)
        if st.session_state.get(PREFIX + "weights_run") not in labels:
            st.session_state[PREFIX + "weights_run"] = None
        st.selectbox("Source run", list(labels), key=PREFIX + "weights_run",
                     format_func=lambda rid: f"{labels[rid]} · {rid}",
                     placeholder="Choose a completed run",
                     help="Start from the convolutional base this run trained: transfer "
                          "from your own source domain.")
        field_error(st, "base.weights", "Source run")
        if not done:
            st.caption("No completed runs yet.")


def weights_panel(ws: Workspace, actor: auth.Actor) -> None:
    status = backbones.weights_status(ws)
    if status["available"]:
        st.caption(f":material/check_circle: {plain(status['message'])}")
        return
    st.warning("No ImageNet weights on this machine yet. Keras downloads them (58 MB) when the "
               "run starts; without internet, upload a VGG16 weights file here (it is checked "
               "and stored in the workspace) or choose **From scratch**.",
               icon=":material/cloud_off:")
    with st.expander("Other ways to provide the weights"):
        st.caption(plain(status["message"]))
    what = "store a weights file in the workspace"
    refused = denied(actor, auth.IMPORT, what=what)
    upload = st.file_uploader("VGG16 weights file", type=["h5", "hdf5"], key="train_weights_upload",
                              disabled=refused is not None, help=refused)
    if upload is not None and st.button("Check and store", key="train_weights_save",
                                        disabled=refused is not None, help=refused):
        if not permitted(actor, auth.IMPORT, what=what):
            return
        try:
            path = backbones.save_weights_upload(upload.getvalue(), upload.name, ws=ws)
        except TLCoreError as exc:
            st.error(plain(exc))
            return
        # Draw the page again: the panel now shows the weights as available.
        flash("train", "success", f"Stored {plain(path.name)}; ImageNet runs will use it.")
        st.rerun()


def head_tab() -> None:
    st.caption("Layers trained on top of the frozen base: pooling → dense layers → softmax.")
    c1, c2 = st.columns(2)
    select(c1, "Pooling", "head.pooling")
    c2.text_input("Dense layers", key=PREFIX + "head.dense",
                  help=config.field_spec("head.dense").help)
    field_error(c2, "head.dense", "Dense layers")
    select(c1, "Activation", "head.activation")
    slider(c2, "Dropout", "head.dropout", step=0.05)
    number(c1, "L2 weight decay", "head.l2", step=1e-4, format="%g")
    c2.toggle("Batch normalisation", key=PREFIX + "head.batchnorm",
              help=config.field_spec("head.batchnorm").help)
    field_error(c2, "head.batchnorm", "Batch normalisation")


def gpu_batch_hint(ws: Workspace) -> str | None:
    """"Fits about N per batch on <GPU>" from the server's device probe, on GPU machines only.

    None until the probe has answered.
    """
    info = device_summary(ws) or {}
    free = (info.get("gpu_free_bytes") or [None])[0]
    if not info.get("gpus") or not free:
        return None
    size = int(st.session_state[PREFIX + "image_size"])
    mixed = st.session_state.get(PREFIX + "train.mixed_precision", "auto") != "off"
    n = backbones.batch_size_hint(size, free, mixed)
    return (f"About {n} images per batch fit in the {free / 2**30:.0f} GiB free on "
            f"{plain(info['gpus'][0])} at {size} px when training through the base.")


def backend_caption() -> str:
    """Which Keras backends this server has, and what "auto" picks.

    Workers run this server's Python with its environment, so what it finds is theirs.
    """
    names = [backend.LABELS[name] for name in backend.available()]
    auto = backend.LABELS[backend.default()]
    return (f"Installed here: {', '.join(names) or 'none'}; auto uses {auto}. Same model "
            f"and results on each; SavedModel and TFLite export need TensorFlow.")


def optimizer_tab(ws: Workspace) -> None:
    st.caption("Phase 1 trains only the head, with the whole base frozen (every layer when the "
               "base trains from the first epoch).")
    c1, c2 = st.columns(2)
    number(c1, "Epochs", "train.epochs", step=1)
    number(c2, "Batch size", "train.batch_size", step=8)
    hint = gpu_batch_hint(ws)
    if hint:
        c2.caption(hint)
    select(c1, "Optimizer", "train.optimizer")
    number(c2, "Learning rate", "train.learning_rate", step=1e-4, format="%g")
    number(c1, "Early-stopping patience", "train.early_stopping_patience", step=1)
    select(c2, "Class weights", "train.class_weight")
    number(c1, "Seed", "train.seed", step=1)
    select(c2, "Mixed precision", "train.mixed_precision")
    select(c1, "Backend", "train.backend")
    c1.caption(backend_caption())
    number(c2, "Training subset", "train.subset", step=1.0, format="%g")
    select(c2, "Devices", "train.distribute")


def fine_tune_tab() -> None:
    st.caption("Phase 2 (optional): unfreeze the last VGG16 blocks and keep training at a low "
               "learning rate, so the pretrained features adapt to your images.")
    slider(st, "Blocks to unfreeze", "fine_tune.blocks", step=1)
    c1, c2 = st.columns(2)
    number(c1, "Fine-tuning epochs", "fine_tune.epochs", step=1)
    number(c2, "Fine-tuning learning rate", "fine_tune.learning_rate", step=1e-5, format="%g")


def augment_tab() -> None:
    st.caption("Random changes to training images only, so the model sees more variety.")
    c1, c2 = st.columns(2)
    select(c1, "Flip", "augment.flip")
    slider(c2, "Rotation (fraction of a turn)", "augment.rotation", step=0.01)
    slider(c1, "Zoom", "augment.zoom", step=0.05)
    slider(c2, "Translate", "augment.translate", step=0.05)
    slider(c1, "Contrast", "augment.contrast", step=0.05)


def model_preview(cfg: config.RunConfig, num_classes: int) -> None:
    """What the config builds: parameters per VGG16 block, frozen or trainable per phase."""
    st.markdown("**Model**")
    summary = backbones.param_summary(cfg, num_classes)
    c1, c2, c3 = st.columns(3)
    c1.metric("Parameters", compact(summary["total"]), help=f"{summary['total']:,} in all.")
    c2.metric("Phase 1 trains", compact(summary["trainable_phase1"]),
              help="Every layer: the base trains from the first epoch." if cfg.base.trainable
              else "The head only; the whole base stays frozen.")
    c3.metric("Phase 2 trains", compact(summary["trainable_phase2"]) if
              cfg.fine_tune.enabled else "—",
              help="The head plus the unfrozen blocks while fine-tuning.")
    rows = pd.DataFrame(backbones.param_table(cfg, num_classes))
    blocks = rows.groupby("block", sort=False).agg(
        params=("params", "sum"), phase1=("trainable_phase1", "any"),
        phase2=("trainable_phase2", "any")).reset_index()
    column_config = {
        "block": "Block",
        "params": st.column_config.NumberColumn("Parameters", format="localized"),
        "phase1": st.column_config.CheckboxColumn(
            "Phase 1", help="Ticked: trains while the head is trained. Empty: frozen."),
        "phase2": st.column_config.CheckboxColumn(
            "Phase 2", help="Ticked: trains while fine-tuning. Empty: frozen."),
    }
    if not cfg.fine_tune.enabled:
        blocks = blocks.drop(columns="phase2")
    st.dataframe(blocks, key="train_blocks", hide_index=True, column_config=column_config)
    if not cfg.fine_tune.enabled:
        st.caption("No fine-tuning phase: set blocks and epochs under Fine-tuning to add one.")
    with st.expander("All layers"):
        rows["output_shape"] = rows["output_shape"].map(lambda s: " × ".join(map(str, s)))
        st.dataframe(rows[["layer", "block", "type", "output_shape", "params"]],
                     key="train_layers", hide_index=True)
    if cfg.base.trainable:
        st.caption(":material/info: Every layer trains from the first epoch, so each epoch runs "
                   "the whole network (nothing frozen to cache): much slower than training "
                   "the head alone.")
    elif cfg.augment.enabled:
        st.info("Augmentation is on, so the frozen base runs on every image every epoch. Turn "
                "it off to use the fast path: base features are computed once, cached, and "
                "only the head trains (seconds per epoch).", icon=":material/lightbulb:")
    else:
        st.caption(":material/bolt: Augmentation off: frozen-base features are cached and "
                   "reused, so phase 1 is fast.")


@st.cache_data(show_spinner=False, max_entries=64)
def dataset_sizes(root: str, name: str, created: float) -> dict | None:
    """A dataset's image sizes from its manifest's health report; None when unreadable.

    `created` is part of the cache key, so a dataset imported again is read again.
    """
    try:
        return datasets_api.load_manifest(name, Workspace.from_env(root))["health"]["sizes"]
    except (TLCoreError, OSError, ValueError, KeyError):
        return None


def launch_warnings(ws: Workspace, cfg: config.RunConfig, row: dict) -> None:
    """Allowed but suspicious settings, as warnings above *Launch run* (never blocking)."""
    sizes = dataset_sizes(str(ws.root), row["name"], row["created"])
    for warning in advice.launch_warnings(cfg, sizes):
        st.warning(warning, icon=":material/warning:")


# ---- live panel --------------------------------------------------------------
def watched_run(runs: list[dict]) -> dict | None:
    """The run to show in detail: the one in the URL, else a running one, else the newest.

    A run in the URL that does not exist (deleted, or a mistyped link) is named in a
    warning; the panel then shows the run it would show without one.
    """
    by_id = {r["id"]: r for r in runs}
    wanted = st.query_params.get("run")
    if wanted in by_id:
        return by_id[wanted]
    if wanted:
        st.warning(f"Run '{plain(wanted)}' not found: it may have been deleted, or the link is "
                   "mistyped. Runs are listed below and on the Runs page.",
                   icon=":material/search_off:")
    running = [r for r in runs if r["status"] == RUNNING]
    if running:
        return running[0]
    return runs[-1] if runs else None


def progress_text(progress: dict) -> tuple[float, str]:
    """Overall fraction and "Phase 1 · epoch 3/10 · batch 12/40 · ETA 1m 05s"."""
    epochs = max(1, progress.get("epochs") or 1)
    batches = max(1, progress.get("batches") or 1)
    epoch = progress.get("epoch") or 0
    batch = progress.get("batch") or 0
    done = min(1.0, max(0.0, (epoch - 1 + batch / batches) / epochs))
    if progress.get("stage") == STAGE_FEATURES:
        return done, (f"Phase {progress.get('phase') or 1} · computing frozen-base features "
                      f"{batch}/{batches} images (once per dataset, size and weights)")
    parts = [f"Phase {progress.get('phase') or 1}", f"epoch {epoch}/{epochs}",
             f"batch {batch}/{batches}"]
    if progress.get("eta_s") is not None:
        parts.append(f"ETA {charts.format_duration(progress['eta_s'])}")
    return done, " · ".join(parts)


def queue_position(training: int, queued: int) -> str:
    """Where a queued run stands: how many runs train or wait before it."""
    ahead = training + queued
    if not ahead:
        return "Waiting for a free worker: it is next in line. It starts on its own."
    return (f"Waiting for a free worker: {ahead} run{'s' if ahead != 1 else ''} ahead of it "
            f"({training} training, {queued} queued). It starts on its own.")


def run_details(ws: Workspace, store: RunStore, run: dict, queue: list[dict],
                actor: auth.Actor) -> None:
    """The watched run: state, progress or results, curves and log; Cancel or Resume.

    Cancel and Resume are its owner's or an admin's; anyone else sees them disabled.
    """
    status = run["status"]
    head, actions = st.columns([4, 1])
    head.markdown(f"#### {plain(run['name'])}")
    status_badge(status, head)
    cfg = run["config"]
    owner = f" · by {plain(run['owner'])}" if run["owner"] else ""
    head.caption(f"Dataset {plain(run['dataset'])} · {cfg['image_size']} px · weights "
                 f"{plain(cfg['base']['weights'])} · "
                 f"{plain(run['device'] or 'device chosen at start')} · id {run['id']}{owner}")
    if status in ACTIVE_STATUSES:
        refused = denied(actor, auth.MANAGE_OWN, run["owner"], "cancel this run")
        cancel = actions.button("Cancel run", key=f"train_cancel_{run['id']}",
                                icon=":material/stop:", disabled=refused is not None, help=refused)
        if cancel and permitted(actor, auth.MANAGE_OWN, run["owner"], "cancel this run"):
            try:
                cancel(run["id"], ws=ws)
            except TLCoreError as exc:
                st.error(plain(exc))
            else:
                st.toast(f"Cancelling {plain(run['name'])}…")
                st.rerun()  # the whole page, so the panel shows the new state at once
    elif status in (FAILED, CANCELLED, LOST):
        refused = denied(actor, auth.LAUNCH, run["owner"], "resume this run")
        resume = actions.button("Resume", key=f"train_resume_{run['id']}",
                                icon=":material/replay:", disabled=refused is not None,
                                help=refused or "Continue from the last saved epoch.")
        if resume and permitted(actor, auth.LAUNCH, run["owner"], "resume this run"):
            try:
                resume(run["id"], ws=ws)
            except TLCoreError as exc:
                st.error(plain(exc))
            else:
                st.toast(f"Resuming {plain(run['name'])}…")
                st.rerun()  # the whole page: the panel shows the queued run and polls again

    if status == QUEUED:
        training = len(store.list_runs(statuses=(RUNNING,)))
        queued = sum(r["seq"] < run["seq"] for r in queue)
        st.info(queue_position(training, queued), icon=":material/schedule:")
    elif status == RUNNING:
        progress = store.progress(run["id"])
        if progress:
            fraction, text = progress_text(progress)
            st.progress(fraction, text=text)
        else:
            st.progress(0.0, text="Starting: loading data and building the model…")
        try:
            silence = liveness.silence_warning(run, (progress or {}).get("stage"))
        except TLCoreError:
            silence = None  # a bad setting: refresh's error is already shown above
        if silence:
            st.warning(silence, icon=":material/heart_broken:")
    elif status == COMPLETED:
        test = run.get("test_metrics") or {}
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Best val accuracy", percent(run.get("best_val_accuracy")))
        c2.metric("Test accuracy", percent(test.get("accuracy")))
        c3.metric("Best epoch", run.get("best_epoch") or "—")
        c4.metric("Duration", charts.format_duration(
            (run["ended"] or time.time()) - run["started"]) if run.get("started") else "—")
        try_it(ws, run["id"])
    elif run.get("error"):
        first, _, rest = run["error"].strip().partition("\n")
        st.error(plain(first))
        if rest.strip():
            with st.expander("Details"):
                st.code(rest, language=None)
    elif status == CANCELLED:
        st.info("Cancelled. Resume continues from the last saved epoch.")

    metrics = charts.metrics_frame(store.metrics(run["id"]), {run["id"]: run["name"]})
    if not metrics.empty or status == RUNNING:
        left, right = st.columns(2)
        left.plotly_chart(charts.learning_curves(metrics, "loss"), key="train_live_loss",
                          theme=None)
        right.plotly_chart(charts.learning_curves(metrics, "accuracy"), key="train_live_acc",
                           theme=None)
    with st.expander("Log", expanded=status == RUNNING):
        log_view(ws, run["id"])


def log_view(ws: Workspace, run_id: str) -> None:
    """The run's own log lines; TensorFlow's and CUDA's messages behind "Show raw log"."""
    raw = st.toggle("Show raw log", key="train_raw_log",
                    help="Everything the worker process printed, TensorFlow's and CUDA's "
                         "messages included.")
    try:
        text = logs.log_tail(run_id, lines=LOG_SCAN_LINES, ws=ws)
    except TLCoreError as exc:
        st.code(str(exc), language=None)
        return
    lines = text.splitlines() if raw else runlog.own_log_lines(text)
    if lines:
        st.code("\n".join(lines[-LOG_LINES:]), language=None, height=260)
    elif text and not raw:
        st.code("(no output from the run yet: TensorFlow's messages are in the raw log)",
                language=None)
    else:
        st.code("(no output yet)", language=None)


def try_it(ws: Workspace, run_id: str) -> None:
    """A completed run classifies a picture: class probabilities and Grad-CAM at once."""
    with st.expander("Try it", icon=":material/photo_camera:"):
        st.caption("Upload an image or take a picture: the model says what it sees, with the "
                   "top classes and where it looked (Grad-CAM, red = most).")
        upload = st.file_uploader("Image", type=UPLOAD_TYPES, key=f"train_try_upload_{run_id}")
        # The camera only starts (and the browser only asks for it) when switched on.
        camera = None
        if st.toggle("Use the camera", key=f"train_try_camera_on_{run_id}"):
            camera = st.camera_input("Take a picture", key=f"train_try_camera_{run_id}")
        picture = camera or upload
        if picture is None:
            return
        data = picture.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        # The live panel redraws on a timer while runs train: classify each picture once.
        done = st.session_state.get(TRY_KEY)
        if not done or done["run"] != run_id or done["digest"] != digest:
            items = classify(ws, run_id, [(picture.name, data)])
            done = {"run": run_id, "digest": digest, "item": items[0] if items else None}
            st.session_state[TRY_KEY] = done
        elif done["item"] is None:
            st.warning("This picture could not be classified; choose another one to try again.")
        if done["item"] is not None:
            show_prediction(done["item"], key="train_try_chart")


def compact(n: int) -> str:
    """16812355 -> '16.8M', 132099 -> '132k': short enough for a narrow metric."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"
    return str(n)


def live_panel(ws: Workspace, polling: bool, actor: auth.Actor) -> None:
    """The runs panel, drawn from the store alone, so any tab and a refreshed page agree.

    Args:
        ws: The workspace.
        polling: Whether this panel re-runs on a timer (while runs are active).
        actor: Who uses the page (Cancel and Resume are the run owner's).
    """
    st.subheader("Runs")
    try:
        liveness.refresh(ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
    store = RunStore(ws)
    runs = store.list_runs()
    if polling != any(r["status"] in ACTIVE_STATUSES for r in runs):
        st.rerun()  # runs started or all ended: draw the page again, with or without the timer
    run = watched_run(runs)
    if run is None:
        st.caption("No runs yet. Launched runs appear here and update live.")
        return
    queue = [r for r in runs if r["status"] == QUEUED]
    others = [r for r in runs if r["status"] in ACTIVE_STATUSES and r["id"] != run["id"]]
    run_details(ws, store, run, queue, actor)
    if others:
        st.markdown("**Also in the queue**")
        for other in others:
            st.page_link("app_pages/train.py", query_params={"run": other["id"]},
                         label=f"{plain(other['name'])} · {other['status']}",
                         icon=STATUS_ICONS[other["status"]])
    st.page_link("app_pages/runs.py", label="All runs, side by side",
                 icon=":material/compare_arrows:")


def idle_watch(ws: Workspace) -> None:
    """Draw an idle page again, live panel and timer, once a run is queued from anywhere.

    Another tab, the Evaluate page's baseline or the CLI may queue one. This draws
    nothing and reads only the active runs, so its ticks stay cheap.
    """
    try:
        active = RunStore(ws).list_runs(statuses=ACTIVE_STATUSES)
    except TLCoreError:
        return  # the live panel above shows the store's error
    if active:
        st.rerun()


# ---- page ----------------------------------------------------------------------
def launch(ws: Workspace, cfg: config.RunConfig, actor: auth.Actor) -> None:
    """Queue `cfg` as the actor's run, once their role allows it; the panel then follows it."""
    if not permitted(actor, auth.LAUNCH):
        return
    if cfg.base.source.kind == "file" and not permitted(actor, auth.SERVER_IMPORT,
                                                        what=SERVER_WEIGHTS):
        return
    name = st.session_state.get(NAME_KEY, "").strip() or None
    try:
        run_id = launch_run(cfg, name=name, ws=ws, owner=actor.user)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    st.query_params["run"] = run_id
    st.toast("Run queued. It starts as soon as a worker is free.",
             icon=":material/rocket_launch:")


def render() -> None:
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
    init_form(names)
    show_flash("train")

    if not names:
        st.info("No datasets yet — create the demo dataset or upload a zip on the Data page, "
                "then come back here.", icon=":material/waving_hand:")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/photo_library:")
    else:
        # Checked before drawing: the tab labels and each widget show the problems.
        values, errors = form_settings(ws, actor)
        st.session_state[ERRORS_KEY] = errors
        cfg, problem = None, None
        if not errors:
            try:
                cfg = build_config(values)
            except TLCoreError as exc:
                problem = str(exc)
        form, preview = st.columns([3, 2], gap="large")
        with form:
            c1, c2 = st.columns(2)
            c1.selectbox("Dataset", names, key=PREFIX + "dataset")
            field_error(c1, "dataset", "Dataset")
            label = preset_label(values)
            st.session_state["train_preset"] = label
            c2.selectbox("Preset", [*config.PRESETS, *([] if label in config.PRESETS else [label])],
                         key="train_preset", on_change=apply_preset,
                         help="A starting point; every setting below stays editable.")
            tabs = st.tabs(tab_labels(errors), key="train_tabs", on_change="rerun")
            with tabs[0]:
                base_tab(ws, store, actor)
            with tabs[1]:
                head_tab()
            with tabs[2]:
                optimizer_tab(ws)
            with tabs[3]:
                fine_tune_tab()
            with tabs[4]:
                augment_tab()
        save_form()
        if cfg is not None:
            try:
                classes = rows[names.index(cfg.dataset)]["classes"]
                backbones.check_model_size(cfg, max(2, len(classes)))
            except TLCoreError as exc:
                cfg, problem = None, str(exc)
        if cfg is not None:
            st.session_state[LAST_VALID_KEY] = cfg.to_dict()
            share_form(cfg)
            launch_warnings(ws, cfg, rows[names.index(cfg.dataset)])
        with preview:
            shown = cfg
            if shown is None:
                last = st.session_state.get(LAST_VALID_KEY)
                shown = (config.RunConfig.from_dict(last) if last else
                         config.preset(config.DEFAULT_PRESET, names[0]))
                st.caption(":material/history: The preview shows the last valid settings until "
                           "the marked fields are fixed.")
            classes = rows[names.index(shown.dataset)]["classes"] if shown.dataset in names else []
            model_preview(shown, max(2, len(classes)))
        c1, c2, c3 = st.columns([2, 1, 3], vertical_alignment="bottom")
        c1.text_input("Run name (optional)", key=NAME_KEY, placeholder="e.g. gap-head-lr1e-3")
        refused = denied(actor, auth.LAUNCH)
        if c2.button("Launch run", key="train_launch", type="primary",
                     disabled=cfg is None or refused is not None, help=refused,
                     icon=":material/rocket_launch:", width="stretch"):
            launch(ws, cfg, actor)
        if problem:
            c3.error(plain(problem), icon=":material/block:")
        elif errors:
            c3.caption(f":red[:material/block: Fix the {len(errors)} setting"
                       f"{'s' if len(errors) != 1 else ''} marked {ERROR_MARK.strip()} to launch.]")
    st.divider()
    # Poll only while something is queued or running; an idle page stays quiet.
    polling = bool(store.list_runs(statuses=ACTIVE_STATUSES))
    st.fragment(live_panel, run_every=LIVE_REFRESH_S if polling else None)(ws, polling, actor)
    if not polling:
        st.fragment(idle_watch, run_every=IDLE_CHECK_S)(ws)


render()
