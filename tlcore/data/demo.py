"""Synthetic image data: the offline demo dataset and the images tests generate.

Each class is a shape (disc, square, triangle, cross, ring, stripes) in a
class-tinted colour on a noisy background, with random position, scale and
hue jitter, so a small model has something real to learn and no download is
needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEMO_CLASSES = ("disc", "square", "triangle", "cross")
_SHAPES = ("disc", "square", "triangle", "cross", "ring", "stripes")
_TINTS = ((220, 60, 50), (60, 170, 70), (50, 90, 210), (230, 180, 40), (170, 70, 200),
          (40, 190, 190))


def synth_image(class_index: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of class `class_index` (0..5)."""
    shape = _SHAPES[class_index % len(_SHAPES)]
    tint = np.array(_TINTS[class_index % len(_TINTS)], dtype=float)
    bg = rng.integers(0, 90, size=(size, size, 3)).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    draw = ImageDraw.Draw(img)
    color = tuple(int(c) for c in np.clip(tint + rng.normal(0, 20, 3), 0, 255))
    r = size * rng.uniform(0.22, 0.34)
    cx, cy = rng.uniform(r, size - r, 2)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "disc":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=color)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=max(2, int(r / 3)))
    else:
        for k in range(-2, 3):
            x = cx + k * r / 2.5
            draw.line((x, cy - r, x, cy + r), fill=color, width=max(1, int(r / 6)))
    return img


def write_class_folders(root: str | Path, classes: tuple[str, ...] | list[str] = DEMO_CLASSES,
                        per_class: int = 10, size: int = 48, seed: int = 0,
                        fmt: str = "png") -> Path:
    """Write `root/<class>/<i>.<fmt>` images and return `root`.

    Class i gets shape i, so any class names work (unicode and spaces included).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            synth_image(ci, size, rng).save(folder / f"{i:04d}.{fmt}")
    return root
