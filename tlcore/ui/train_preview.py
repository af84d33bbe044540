"""The Train page's preview of what the form builds, and warnings before launching.

Drawn from the config alone (`backbones.param_summary`, `backbones.param_table`):
no Keras, so it follows every change of the form at once.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tlcore import config
from tlcore import data as datasets_api
from tlcore.config import advice
from tlcore.errors import TLCoreError
from tlcore.ui.train_form import LAST_VALID_KEY
from tlcore.vgg16 import backbones
from tlcore.workspace import Workspace


def preview(cfg: config.RunConfig | None, rows: list[dict]) -> None:
    """The model preview of `cfg`, or of the last valid settings while the form has problems.

    Args:
        cfg: The form's config; None while a field has a problem.
        rows: The datasets (as from `data.list_datasets`), for the number of classes.
    """
    names = [r["name"] for r in rows]
    shown = cfg
    if shown is None:
        last = st.session_state.get(LAST_VALID_KEY)
        shown = (config.RunConfig.from_dict(last) if last else
                 config.preset(config.DEFAULT_PRESET, names[0]))
        st.caption(":material/history: The preview shows the last valid settings until "
                   "the marked fields are fixed.")
    classes = rows[names.index(shown.dataset)]["classes"] if shown.dataset in names else []
    model_preview(shown, max(2, len(classes)))


def compact(n: int) -> str:
    """16812355 -> '16.8M', 132099 -> '132k': short enough for a narrow metric."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"
    return str(n)


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
