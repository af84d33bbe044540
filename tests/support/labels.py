"""Tiny datasets for the label review tests: two colour classes, a few labels swapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tlcore import data as datasets_api
from tlcore.workspace import Workspace

COLOURS = {"blue": (40, 40, 200), "red": (200, 40, 40)}


def colour_folders(root: Path, per_class: int = 16, flipped: int = 2, size: int = 32,
                   seed: int = 0) -> tuple[Path, list[str]]:
    """Class folders of noisy single-colour images; the first `flipped` of each colour sit in
    the other colour's folder.

    Returns:
        The folder, and the swapped images as the import records their source
        (`"<folder>/<file>"`).
    """
    rng = np.random.default_rng(seed)
    for name in COLOURS:
        (root / name).mkdir(parents=True)
    swapped = []
    for name, rgb in COLOURS.items():
        other = next(c for c in COLOURS if c != name)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            folder = other if i < flipped else name
            Image.fromarray(pixels.astype(np.uint8)).save(root / folder / f"{name}{i:02d}.png")
            if i < flipped:
                swapped.append(f"{folder}/{name}{i:02d}.png")
    return root, swapped


def colour_dataset(ws: Workspace, name: str = "colours", **kwargs) -> tuple[dict, set[str]]:
    """Import `colour_folders` as dataset `name`; returns its manifest and the swapped ids."""
    folder, swapped = colour_folders(ws.root.parent / f"src-{name}", **kwargs)
    datasets_api.import_dataset(folder, name, ws=ws)
    manifest = datasets_api.load_manifest(name, ws)
    ids = {Path(im["file"]).stem for im in manifest["images"] if im["source"] in swapped}
    assert len(ids) == len(swapped)
    return manifest, ids
