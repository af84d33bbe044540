"""The Train page's form state: defaults, the `?cfg=` link, session keys, the RunConfig.

The form's widgets (`tlcore.ui.train_widgets`) keep their values in session state
under `PREFIX` + the flat config key (`cfg.train.epochs`), plus a few keys of
their own: the weights mode, file and run that `base.weights` is made of. This
module fills those keys (a preset, a clone, a shared link, or the values kept
from the last visit), reads them back as flat config values with every problem
in plain words, builds the `RunConfig` and queues it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from tlcore import auth, config
from tlcore.errors import TLCoreError
from tlcore.runs.launch import launch as launch_run
from tlcore.ui import access
from tlcore.ui.flash import flash
from tlcore.ui.live_panel import LAUNCHED_KEY
from tlcore.ui.text import plain
from tlcore.workspace import Workspace, check_server_path

PAGE = "app_pages/train.py"
PREFIX = "cfg."  # session-state keys of the config form
SAVED_KEY = "train_saved"  # the form's values, kept while another page is open
PREFILL_KEY = "train_prefill"  # a config dict to load (set by "Clone and edit")
PREFILL_NAME_KEY = "train_prefill_name"  # the cloned run's name (set with PREFILL_KEY)
CLONED_KEY = "train_cloned"  # {"name", "settings"} of the clone the form was loaded from
LAST_VALID_KEY = "train_last_valid"  # the last valid config dict: the preview falls back to it
ERRORS_KEY = "train_field_errors"  # {config key: message} of the form as it stands
NAME_KEY = "train_run_name"
PRESET_KEY = "train_preset"
TABS_KEY = "train_tabs"
LINK_PARAM = "cfg"  # the form's settings in the URL (config.link_token): reload and share
NAME_PARAM = "name"  # the run name in the URL
CUSTOM = "Custom"
SERVER_WEIGHTS = "train from a weights file named by its path on the server"
TABS = ("Base & weights", "Head", "Optimizer", "Fine-tuning", "Augmentation")
TAB_OF = {"image_size": 0, "base": 0, "head": 1, "train": 2, "fine_tune": 3, "augment": 4}
ERROR_MARK = " ⚠"
# The base's start and freeze policy: a weights source, except "scratch" (weights none,
# every layer trained) and "none" (weights none, base frozen).
SCRATCH_MODE = "scratch"
WEIGHT_MODES = {
    "imagenet": "ImageNet (pretrained)",
    SCRATCH_MODE: "From scratch (train every layer)",
    "none": "Random frozen features (not a from-scratch baseline)",
    "file": "Weights file on the server",
    "run": "An earlier run's base",
}


def form_values(cfg: config.RunConfig) -> dict[str, Any]:
    """Session-state values of the form widgets for `cfg`.

    Args:
        cfg: The config to show.

    Returns:
        `{session key: value}` for every widget of the form.
    """
    values = {PREFIX + k: v for k, v in cfg.flat().items()
              if k not in ("base.name", "base.weights")}
    values[PREFIX + "head.dense"] = ", ".join(str(u) for u in cfg.head.dense)
    source = cfg.base.source
    values[PREFIX + "weights_mode"] = SCRATCH_MODE if cfg.base.from_scratch else source.kind
    values[PREFIX + "weights_file"] = source.path or ""
    values[PREFIX + "weights_run"] = source.run_id
    return values


def load_form(values: dict[str, Any], keep_dataset: bool = False) -> None:
    """Put `values` (see `form_values`) in session state, the dataset kept when asked."""
    for key, value in values.items():
        if keep_dataset and key == PREFIX + "dataset":
            continue
        st.session_state[key] = value


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    """Flat config values without the dataset: what a preset or a clone fixes."""
    return {k: v for k, v in values.items() if k not in ("dataset", "base.name")}


def apply_preset() -> None:
    """Preset changed: reload every knob from it, keeping the chosen dataset."""
    name = st.session_state[PRESET_KEY]
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


def open_in_train(run_config: dict[str, Any], name: str, run_id: str | None = None) -> None:
    """Switch to the Train page with a run's settings in the form ("Clone and edit").

    Args:
        run_config: The run's config dict.
        name: The run's name, shown as where the settings came from.
        run_id: The run the page's runs panel then shows (`?run=`), so its results
            sit below its settings; None: the panel's usual choice.
    """
    st.session_state[PREFILL_KEY] = run_config
    st.session_state[PREFILL_NAME_KEY] = name
    st.switch_page(PAGE, query_params={"run": run_id} if run_id else None)


def init_form(names: list[str]) -> None:
    """Fill the form on first visit, after another page, from a link or "Clone and edit".

    Order: a clone; else, when the form is not on screen yet, the settings in the
    URL (a reload or a shared link), the values kept from this session's last
    visit, or the default preset. A link that cannot be used is refused with a
    warning and changes nothing.

    Args:
        names: The datasets there are; the form's dataset is one of them.
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
    open_tab = str(st.session_state.get(TABS_KEY) or "").removesuffix(ERROR_MARK)
    if open_tab in TABS:
        st.session_state[TABS_KEY] = labels[TABS.index(open_tab)]
    return labels


def reset_trainable() -> None:
    """Weights mode changed: a pretrained base starts frozen again (the toggle is opt-in)."""
    st.session_state[PREFIX + "base.trainable"] = False


def launch(ws: Workspace, cfg: config.RunConfig, actor: auth.Actor) -> None:
    """Queue `cfg` as the actor's run, once their role allows it.

    The runs panel and the line by Launch (`live_panel.launch_status`) then follow it.
    """
    if not access.permitted(actor, auth.LAUNCH):
        return
    if cfg.base.source.kind == "file" and not access.permitted(
            actor, auth.SERVER_IMPORT, what=SERVER_WEIGHTS):
        return
    name = st.session_state.get(NAME_KEY, "").strip() or None
    try:
        run_id = launch_run(cfg, name=name, ws=ws, owner=actor.user)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    st.query_params["run"] = run_id
    st.session_state[LAUNCHED_KEY] = run_id  # the line by Launch follows it
