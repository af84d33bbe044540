"""Review labels: find the images whose label is likely wrong and fix them in one new version.

The Data page's `review_section` starts a label review of the selected dataset
in its own process (`tlcore.results.label_review`: frozen-base features, a
cross-validated classifier, cleanlab), follows its progress in a fragment, then
shows the suspicious images as a grid (image, given label, suggested label,
confidence), each with keep / relabel / remove, and the near-duplicates and
outliers found from the same features. "Apply" turns every decision into one
call of `tlcore.data.apply_fixes`, which makes one new version of the dataset.
Evaluate's most-confident mistakes get the same actions (`mistake_fixes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from tlcore import auth
from tlcore.data.label_issues import ACTIONS, KEEP, RELABEL, REMOVE, fixes
from tlcore.errors import TLCoreError
from tlcore.results import label_review
from tlcore.store import RunStore
from tlcore.ui.access import denied, permitted
from tlcore.ui.flash import flash
from tlcore.ui.text import percent, plain
from tlcore.vgg16.backbones import weights_status
from tlcore.workspace import Workspace

JOB_KEY = "review_job"
SHOWN_KEY = "review_shown"
POLL_S = 1.0
SIZES = (32, 48, 64, 96, 128, 150, 224)
WEIGHTS = {"imagenet": "ImageNet", "none": "Random init (a quick check)"}
COLUMNS = 4
PAGE = 12  # images per "show more"
ACTION_LABELS = {KEEP: "Keep", RELABEL: "Relabel", REMOVE: "Remove"}
FIX_WHAT = "fix this dataset's labels"


def decision_key(prefix: str, scope: str, image_id: str) -> str:
    """The widget key of one image's decision in `scope` (a dataset version, an evaluation)."""
    return f"{prefix}_{scope}_{image_id}"


def decisions(prefix: str, scope: str, image_ids: list[str]) -> dict[str, str]:
    """`{image_id: action}` as the grid's widgets hold them (untouched: keep)."""
    return {i: st.session_state.get(decision_key(prefix, scope, i)) or KEEP
            for i in image_ids}


def apply_decisions(ws: Workspace, actor: auth.Actor, dataset: str, chosen: dict[str, str],
                    suggested: dict[str, str], page: str) -> bool:
    """Make the accepted fixes one new version of `dataset`; True when it was made.

    Args:
        ws: The workspace.
        actor: Who applies them: the dataset's owner or an admin.
        dataset: The dataset.
        chosen: `{image_id: action}` (see `tlcore.data.label_issues.fixes`).
        suggested: `{image_id: class}` that "relabel" moves an image to.
        page: The page whose flash says what was done.
    """
    relabel, remove = fixes(chosen, suggested)
    try:
        owner = RunStore(ws).dataset_owner(dataset)
    except TLCoreError as exc:
        st.error(plain(exc))
        return False
    if not permitted(actor, auth.MANAGE_OWN, owner, FIX_WHAT):
        return False
    from tlcore.data import apply_fixes

    try:
        version = apply_fixes(dataset, relabel=relabel, remove=remove, ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return False
    flash(page, "success",
          f"New version {plain(str(version))} of {plain(dataset)}: {len(relabel)} relabelled, "
          f"{len(remove)} removed. Runs trained on the earlier version keep it.")
    return True


def decision_cell(col: Any, key: str, caption: str, image: str | None = None,
                  missing: bool = False) -> None:
    """One image of a grid: the image (or that it is missing), its caption, and the decision."""
    with col:
        if image:
            st.image(image, width="stretch")
        elif missing:
            st.caption(":material/broken_image: image missing")
        st.caption(caption)
        st.segmented_control("Decision", list(ACTIONS), default=KEEP,
                             format_func=ACTION_LABELS.get, label_visibility="collapsed",
                             key=key)


def image_file(ws: Workspace, dataset: str, rel: str) -> str | None:
    """The stored image's path, or None when it is gone."""
    path = ws.dataset_dir(dataset) / rel
    return str(path) if path.is_file() else None


def fix_button(ws: Workspace, actor: auth.Actor, dataset: str, owner: str | None,
               chosen: dict[str, str], suggested: dict[str, str], page: str, key: str,
               keys: list[str]) -> None:
    """"Apply", enabled once some image is to be relabelled or removed.

    Once applied, the decision widgets `keys` start afresh and the page is drawn again.
    """
    relabel, remove = fixes(chosen, suggested)
    refused = denied(actor, auth.MANAGE_OWN, owner, FIX_WHAT)
    label = f"Apply: relabel {len(relabel)}, remove {len(remove)}"
    if st.button(label, key=key, type="primary", icon=":material/task_alt:",
                 disabled=not (relabel or remove) or refused is not None, help=refused):
        if apply_decisions(ws, actor, dataset, chosen, suggested, page):
            for widget in keys:
                st.session_state.pop(widget, None)
            # The pages cache a dataset's record, samples and evaluations: all may show
            # the earlier version now.
            st.cache_data.clear()
            st.rerun()


# ---- the Data page ------------------------------------------------------------------
def review_section(ws: Workspace, actor: auth.Actor, info: dict[str, Any],
                   owner: str | None) -> None:
    """The Data page's label review of dataset `info` (its `show_dataset` record).

    Args:
        ws: The workspace.
        actor: Who uses the page.
        info: The dataset's record.
        owner: The dataset's owner (None: the local operator).
    """
    name = info["name"]
    st.markdown("**Review labels**")
    st.caption("Finds images whose label is likely wrong: a classifier on the frozen VGG16 "
               "features, cross-validated so that no image is judged by a model that saw its "
               "label, ranked by cleanlab. Also near-duplicates and outliers.")
    c1, c2, c3 = st.columns([1, 2, 2], vertical_alignment="bottom")
    size = c1.selectbox("Image size", SIZES, index=SIZES.index(label_review.DEFAULT_SIZE),
                        key="review_size")
    weights = c2.selectbox("Base weights", list(WEIGHTS), format_func=WEIGHTS.get,
                           key="review_weights")
    job = st.session_state.get(JOB_KEY)
    try:
        review = label_review.cached_review(name, image_size=size, weights=weights, ws=ws)
    except TLCoreError as exc:
        st.error(plain(exc))
        return
    if review is None and weights == "imagenet":
        status = weights_status(ws)
        if not status["available"]:
            st.caption(f":material/cloud_off: {plain(status['message'])}")
    if review is None:
        busy = (f"A review of {plain(job['dataset'])} is running." if job else None)
        if c3.button("Review labels", key="review_start", icon=":material/fact_check:",
                     disabled=job is not None, help=busy):
            try:
                started = label_review.start_review(name, image_size=size, weights=weights,
                                                    ws=ws)
            except TLCoreError as exc:
                st.error(plain(exc))
                return
            st.session_state[JOB_KEY] = {"job": str(started), "dataset": name}
            st.rerun()
    if job and job["dataset"] == name:
        st.fragment(follow_review, run_every=POLL_S)(job)
    if review is not None:
        review_grid(ws, actor, review, owner)


def follow_review(job: dict[str, str]) -> None:
    """The running review's progress; when it ends, the page is drawn again with its result."""
    status = label_review.review_status(job["job"])
    if status.running:
        count = f" {status.done} / {status.total} images" if status.total else ""
        st.progress(status.done / status.total if status.total else 0.0,
                    text=f"Reviewing labels: {plain(status.message)}{count}")
        return
    label_review.forget_review(job["job"])
    st.session_state.pop(JOB_KEY, None)
    if status.error:
        flash("data", "error", plain(status.error))
    st.rerun()


def review_grid(ws: Workspace, actor: auth.Actor, review: dict[str, Any],
                owner: str | None) -> None:
    """The suspicious images with their decisions and "Apply", then duplicates and outliers."""
    name, scope = review["dataset"], review["fingerprint"][:12]
    flagged = [r for r in review["rows"] if r["suspect"]]
    st.caption(f"{len(flagged)} suspect label{'s' if len(flagged) != 1 else ''} among "
               f"{len(review['rows'])} images, most suspicious first ({review['issues']} counted "
               "as label issues by cleanlab, the rest put in another class by the classifier; "
               f"{review['size']} px, {WEIGHTS.get(review['weights'], plain(review['weights']))}"
               " weights).")
    if review["skipped_classes"]:
        st.caption("Not reviewed, fewer than 2 images: "
                   f"{', '.join(plain(c) for c in review['skipped_classes'])}.")
    if flagged:
        shown = flagged[:st.session_state.get(SHOWN_KEY, PAGE)]
        for start in range(0, len(shown), COLUMNS):
            cols = st.columns(COLUMNS)
            for col, row in zip(cols, shown[start:start + COLUMNS], strict=False):
                image = image_file(ws, name, row["file"])
                decision_cell(col, decision_key("review", scope, row["image_id"]),
                              f"{plain(row['given'])} → {plain(row['suggested'])} · "
                              f"{percent(row['confidence'])} sure", image, missing=not image)
        if len(shown) < len(flagged) and st.button(
                f"Show {min(PAGE, len(flagged) - len(shown))} more", key="review_more"):
            st.session_state[SHOWN_KEY] = len(shown) + PAGE
            st.rerun()
        ids = [r["image_id"] for r in shown]
        fix_button(ws, actor, name, owner, decisions("review", scope, ids),
                   {r["image_id"]: r["suggested"] for r in shown}, "data", "review_apply",
                   [decision_key("review", scope, i) for i in ids])
    else:
        st.success("No suspect labels.", icon=":material/verified:")
    health_additions(review)


def health_additions(review: dict[str, Any]) -> None:
    """Near-duplicates and outliers found from the review's features."""
    groups, unusual = review["near_duplicates"], review["outliers"]
    c1, c2 = st.columns(2)
    c1.metric("Near-duplicates", len(groups),
              help="Groups of images whose features are nearly the same: re-encoded, resized "
                   "or slightly edited copies. Across splits they leak; across classes one "
                   "label is wrong.")
    c2.metric("Outliers", len(unusual),
              help="Images far from every other image in feature space: often not of the "
                   "dataset's kind at all.")
    if groups:
        with st.expander(f"Near-duplicate groups ({len(groups)})"):
            st.dataframe(pd.DataFrame({
                "files": [", ".join(g["files"]) for g in groups],
                "classes": [", ".join(g["classes"]) for g in groups],
                "splits": [", ".join(g["splits"]) for g in groups]}),
                key="review_duplicates", hide_index=True)
    if unusual:
        with st.expander(f"Outliers ({len(unusual)})"):
            st.dataframe(pd.DataFrame(unusual)[["file", "class", "split", "score"]],
                         key="review_outliers", hide_index=True)


# ---- Evaluate's mistakes ---------------------------------------------------------------
def mistake_fixes(ws: Workspace, actor: auth.Actor, evaluation: dict[str, Any], split: str,
                  wrong: list[dict[str, Any]]) -> None:
    """Relabel (to the predicted class) or remove the mistakes shown, in one new version.

    Args:
        ws: The workspace.
        actor: Who uses the page.
        evaluation: The stored evaluation the mistakes are from.
        split: Its split shown.
        wrong: The mistakes shown (`tlcore.results.evaluate.mistakes` rows).
    """
    dataset = evaluation["dataset"]
    try:
        owner = RunStore(ws).dataset_owner(dataset)
    except TLCoreError:
        return  # the dataset is gone: nothing to fix
    with st.expander("Fix these labels", icon=":material/edit_note:"):
        st.caption("When the label, not the model, is wrong: relabel the image to the "
                   "predicted class, or remove it. One new version of the dataset; runs "
                   "trained on the earlier one keep it.")
        scope = f"{evaluation['run_id']}_{split}"
        ids = [Path(w["file"]).stem for w in wrong]
        for start in range(0, len(wrong), COLUMNS):
            cols = st.columns(COLUMNS)
            for col, w, image_id in zip(cols, wrong[start:start + COLUMNS],
                                        ids[start:start + COLUMNS], strict=False):
                decision_cell(col, decision_key("eval_fix", scope, image_id),
                              f"{plain(Path(w['file']).name)}: {plain(w['true'])} → "
                              f"{plain(w['predicted'])}")
        fix_button(ws, actor, dataset, owner, decisions("eval_fix", scope, ids),
                   {i: w["predicted"] for i, w in zip(ids, wrong, strict=True)}, "eval",
                   "eval_fix_apply", [decision_key("eval_fix", scope, i) for i in ids])
