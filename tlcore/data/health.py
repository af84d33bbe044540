"""The health report of a dataset: counts, balance, sizes, duplicates, leakage, skips."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from tlcore.entities import SPLITS


def health_report(images: list[dict[str, Any]], classes: list[str],
                  skipped: list[dict[str, str]], notes: list[str] = ()) -> dict[str, Any]:
    """Counts, balance, sizes, duplicates, leakage and skipped files of a dataset.

    Args:
        images: Manifest image records (with "split" set).
        classes: Class names; index = label.
        skipped: Skipped files `{file, reason}`.
        notes: Sentences about the import to lead the warnings with.

    Returns:
        A dict: counts `{class: {train, val, test, total}}`, splits `{split: n}`,
        n_images, n_classes, imbalance_ratio (largest / smallest class), sizes
        (min/max/median width and height, distinct sizes with counts, most common
        first), duplicates (groups of identical files: sha256, files, classes,
        splits), leakage (the duplicate groups found in more than one split),
        label_conflicts (groups labelled with more than one class), skipped
        (`{total, by_reason}`) and warnings (plain sentences).
    """
    counts = {c: dict.fromkeys((*SPLITS, "total"), 0) for c in classes}
    for im in images:
        counts[im["class"]][im["split"]] += 1
        counts[im["class"]]["total"] += 1
    totals = [counts[c]["total"] for c in classes]
    imbalance = round(max(totals) / min(totals), 3) if totals and min(totals) else None
    widths = [im["width"] for im in images]
    heights = [im["height"] for im in images]
    distinct = Counter((im["width"], im["height"]) for im in images)
    sizes = {
        "width": _stats(widths),
        "height": _stats(heights),
        "n_distinct": len(distinct),
        "distinct": [{"width": w, "height": h, "count": n}
                     for (w, h), n in distinct.most_common(20)],
    }
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for im in images:
        groups[im["sha256"]].append(im)
    duplicates = [
        {"sha256": sha, "files": [im["source"] for im in group],
         "classes": sorted({im["class"] for im in group}),
         "splits": [s for s in SPLITS if any(im["split"] == s for im in group)]}
        for sha, group in groups.items() if len(group) > 1
    ]
    leakage = [d for d in duplicates if len(d["splits"]) > 1]
    conflicts = [d for d in duplicates if len(d["classes"]) > 1]
    by_reason = Counter(reason_kind(s["reason"]) for s in skipped)
    notes = list(notes)
    if imbalance and imbalance >= 3:
        notes.append(f"Classes are imbalanced: the largest has {imbalance:g}x the images of "
                        "the smallest; class_weight=auto compensates.")
    if duplicates:
        n_extra = sum(len(d["files"]) - 1 for d in duplicates)
        notes.append(f"{len(duplicates)} groups of identical files ({n_extra} extra copies).")
    if leakage:
        notes.append(f"{len(leakage)} groups of identical files sit in more than one split "
                        "(leakage): validation and test scores may be optimistic.")
    if conflicts:
        notes.append(f"{len(conflicts)} groups of identical files carry different labels.")
    no_val = [c for c in classes if counts[c]["val"] == 0]
    if no_val and any(counts[c]["val"] for c in classes):
        notes.append(f"{len(no_val)} classes have no validation images: "
                        + ", ".join(no_val[:5]) + ("..." if len(no_val) > 5 else "") + ".")
    if widths and min(min(widths), min(heights)) < 32:
        notes.append("Some images are smaller than 32 px; they will be upscaled.")
    if skipped:
        notes.append(f"{len(skipped)} files were skipped (see skipped).")
    return {
        "counts": counts,
        "splits": {s: sum(counts[c][s] for c in classes) for s in SPLITS},
        "n_images": len(images),
        "n_classes": len(classes),
        "imbalance_ratio": imbalance,
        "sizes": sizes,
        "duplicates": duplicates,
        "leakage": leakage,
        "label_conflicts": conflicts,
        "skipped": {"total": len(skipped), "by_reason": dict(by_reason.most_common())},
        "warnings": notes,
    }


def _stats(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "max": None, "median": None}
    return {"min": min(values), "max": max(values), "median": statistics.median(values)}


def skipped_note(skipped: list[dict[str, str]]) -> str:
    """"12 files skipped: 10 hidden file, 2 not an image": the count and top reasons."""
    reasons = Counter(reason_kind(s["reason"]) for s in skipped)
    return f"{len(skipped)} files skipped: " + ", ".join(
        f"{n} {r}" for r, n in reasons.most_common(3))


def reason_kind(reason: str) -> str:
    """The kind of a skip reason, without its details ("unreadable: ..." -> "unreadable")."""
    return reason.split(":", 1)[0].split(" (", 1)[0]
