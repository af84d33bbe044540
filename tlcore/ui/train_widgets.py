"""The Train form's widgets: the five tabs of config fields under the dataset and preset.

Each config widget takes its limits, options and tooltip from the field's
declaration (`tlcore.ui.config_widgets`), keeps its value under `PREFIX` + the
flat config key, and shows the field's problem under it (`train_form.field_error`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from tlcore import auth, backend, config
from tlcore.charts import runs as charts
from tlcore.errors import TLCoreError
from tlcore.store import COMPLETED, RunStore
from tlcore.ui import access
from tlcore.ui.config_widgets import number_input_kwargs, selectbox_kwargs, slider_kwargs
from tlcore.ui.device import device_summary
from tlcore.ui.flash import flash
from tlcore.ui.text import plain
from tlcore.ui.train_form import (
    PREFIX,
    SCRATCH_MODE,
    TABS_KEY,
    WEIGHT_MODES,
    field_error,
    reset_trainable,
    tab_labels,
)
from tlcore.vgg16 import backbones
from tlcore.workspace import Workspace


def form_tabs(ws: Workspace, store: RunStore, actor: auth.Actor, errors: dict[str, str]) -> None:
    """The form's tabs, each marked when a field inside has a problem.

    Args:
        ws: The workspace.
        store: The run store (the completed runs whose base a run may start from).
        actor: Who uses the page (storing a weights file needs the import role).
        errors: `{config key: message}` of the form as it stands.
    """
    tabs = st.tabs(tab_labels(errors), key=TABS_KEY, on_change="rerun")
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


def base_tab(ws: Workspace, store: RunStore, actor: auth.Actor) -> None:
    """Image size, where the base's weights come from, and whether it trains."""
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
    """Whether the ImageNet weights are here; if not, an upload that stores a weights file."""
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
    refused = access.denied(actor, auth.IMPORT, what=what)
    upload = st.file_uploader("VGG16 weights file", type=["h5", "hdf5"], key="train_weights_upload",
                              disabled=refused is not None, help=refused)
    if upload is not None and st.button("Check and store", key="train_weights_save",
                                        disabled=refused is not None, help=refused):
        if not access.permitted(actor, auth.IMPORT, what=what):
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
    """Pooling, dense layers and their regularisation."""
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
    """Phase 1's training settings, the backend and the devices."""
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
    """Phase 2: the blocks to unfreeze, its epochs and learning rate."""
    st.caption("Phase 2 (optional): unfreeze the last VGG16 blocks and keep training at a low "
               "learning rate, so the pretrained features adapt to your images.")
    slider(st, "Blocks to unfreeze", "fine_tune.blocks", step=1)
    c1, c2 = st.columns(2)
    number(c1, "Fine-tuning epochs", "fine_tune.epochs", step=1)
    number(c2, "Fine-tuning learning rate", "fine_tune.learning_rate", step=1e-5, format="%g")


def augment_tab() -> None:
    """Random changes to the training images."""
    st.caption("Random changes to training images only, so the model sees more variety.")
    c1, c2 = st.columns(2)
    select(c1, "Flip", "augment.flip")
    slider(c2, "Rotation (fraction of a turn)", "augment.rotation", step=0.01)
    slider(c1, "Zoom", "augment.zoom", step=0.05)
    slider(c2, "Translate", "augment.translate", step=0.05)
    slider(c1, "Contrast", "augment.contrast", step=0.05)
