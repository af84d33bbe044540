"""Decoding with Pillow: every image is stored in a form `convert("RGB")` reads right.

Every file is decoded with Pillow (its extension is never trusted, and only an
allow-list of formats is opened). Plain RGB/grayscale JPEG and PNG files are
kept byte for byte; anything else (CMYK, palette, alpha, 16-bit, EXIF-rotated,
BMP/GIF/WebP/TIFF...) is converted and re-encoded as PNG. Alpha is composited
on white; 16-bit images are scaled (not clipped) to 8 bits. Truncated files and
pixel bombs give a reason to skip the file instead of an image.
"""

from __future__ import annotations

import functools
import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tlcore.data.limits import ImportLimits

# Formats Pillow may decode. An allow-list keeps risky or exotic decoders (EPS runs
# Ghostscript) away from uploaded files.
_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM", "TGA", "AVIF", "JPEG2000")
# Formats whose bytes can be stored as they are when the image is plain RGB or L.
_COPY_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_EXIF_ORIENTATION = 0x0112
_PNG_COMPRESS_LEVEL = 1  # import speed matters more than a few percent of disk


@dataclass(frozen=True)
class Stored:
    """A validated image, ready to be written."""

    sha256: str
    ext: str
    payload: bytes
    width: int
    height: int


@functools.cache
def _open_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def open_image(data: bytes, limits: ImportLimits) -> tuple[Image.Image, bytes] | str:
    """Parse the header only (no pixels decoded) and apply the pixel limit.

    Runs in the importing thread: Pillow's decompression-bomb warning goes through
    the process-wide `warnings` filters, which are not thread-safe to change.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_open_formats())
    except Image.DecompressionBombError as exc:
        return f"too many pixels (decompression-bomb limit), not decoded: {exc}"
    except UnidentifiedImageError:
        return "not an image (or an unsupported format)"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken headers
        return f"undecodable: {exc}"
    width, height = img.size
    if width * height > limits.max_image_pixels:
        return (f"too many pixels (decompression-bomb limit), not decoded: {width}x{height} > "
                f"max_image_pixels={limits.max_image_pixels}")
    if width < 1 or height < 1:
        return f"undecodable: empty image {width}x{height}"
    return img, data


def finish_image(opened: tuple[Image.Image, bytes] | str) -> Stored | str:
    """Decode, normalise and encode one opened image (runs in a worker thread)."""
    if isinstance(opened, str):
        return opened
    img, data = opened
    with img:
        try:
            img.load()
            rgb = _normalise(img)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken data
            return f"undecodable: {exc}"
        if rgb is img and img.format in _COPY_EXT:
            payload, ext = data, _COPY_EXT[img.format]
        else:
            buf = io.BytesIO()
            rgb.save(buf, "PNG", compress_level=_PNG_COMPRESS_LEVEL)
            payload, ext = buf.getvalue(), ".png"
        return Stored(hashlib.sha256(payload).hexdigest(), ext, payload, *rgb.size)


def _normalise(img: Image.Image) -> Image.Image:
    """`img` itself when it is plain RGB or L, else an RGB/L copy that looks the same.

    EXIF orientation is applied, alpha is composited on white, 16-bit and float
    images are scaled (not clipped) to 8 bits.

    Raises:
        ValueError: The colour mode cannot be converted.
    """
    if img.getexif().get(_EXIF_ORIENTATION, 1) in range(2, 9):
        img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        return _scale_to_8bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    if img.mode in ("RGB", "L"):
        return img
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Grayscale "L" from a 16-bit or float image, keeping the whole range visible."""
    a = np.nan_to_num(np.asarray(img, dtype=np.float64))
    lo, hi = float(a.min()), float(a.max())
    if img.mode == "F":
        lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
    else:
        lo, hi = (0.0, 65535.0) if lo >= 0 and hi <= 65535 else (lo, hi)
    scaled = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
