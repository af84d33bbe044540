"""Decoding with Pillow: every stored image is written again from its decoded pixels.

Every file is decoded with Pillow (its extension is never trusted, and only an
allow-list of formats is opened) and encoded again by Pillow, so a stored file
holds one image and nothing else: bytes after the image data, metadata chunks
and anything hidden in them (a PNG that is also an HDF5 or zip file, say) are
dropped. JPEGs that need no conversion are stored as JPEGs re-encoded with their
own quantization tables and chroma subsampling: the file keeps about its size
and pixels move by about a level on photographs, where a PNG copy would be
several times larger. Everything else (PNG, CMYK, palette, alpha, 16-bit, EXIF-rotated,
BMP/GIF/WebP/TIFF...) is stored as a lossless PNG of the pixels `convert("RGB")`
reads. Alpha is composited on white; 16-bit and float images are scaled (not
clipped) to 8 bits, a strip at a time and in integers where the data are.

Memory is bounded before any pixel is decoded: the header gives the decoded size
(width x height x bytes per pixel as Pillow holds it), checked against
`max_image_bytes`, and an estimate of the whole decode's peak (`Opened.cost`),
which the importer keeps under `max_import_memory_mb` for all threads together.
A JPEG over either bound is decoded at 1/2, 1/4 or 1/8 scale when that fits.
Truncated files and pixel bombs give a reason to skip the file instead of an image.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tlcore.data.limits import ImportLimits, human_bytes

# Formats Pillow may decode. An allow-list keeps risky or exotic decoders (EPS runs
# Ghostscript) away from uploaded files.
_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM", "TGA", "AVIF", "JPEG2000")
_JPEG_FORMATS = ("JPEG", "MPO")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_GRAY_MODES = ("1", "L", "F", *_SIXTEEN_BIT_MODES)  # stored as "L"
# Bytes per pixel of Pillow's in-memory image; every other mode takes 4 (RGB is padded).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_DRAFT_SCALES = (2, 4, 8)
_STRIP_PIXELS = 1 << 18  # 16-bit and float images are scaled this many pixels at a time
_EXIF_ORIENTATION = 0x0112
_PNG_COMPRESS_LEVEL = 1  # import speed matters more than a few percent of disk
_JPEG_FALLBACK_QUALITY = 95  # when a JPEG's own tables cannot be reused (MPO, odd layouts)


# Pillow holds large images in blocks of 16 MiB by default; glibc serves blocks that
# small from per-thread arenas that keep what is freed, so each decoding thread would
# keep its own peak. Blocks over glibc's 32 MiB mmap threshold go back to the system
# when freed, which keeps the import's memory under its stated bound.
_PILLOW_BLOCK_BYTES = 64 << 20
Image.core.set_block_size(max(_PILLOW_BLOCK_BYTES, Image.core.get_block_size()))


@dataclass(frozen=True)
class Opened:
    """An image whose header was read and checked; no pixels decoded yet.

    Attributes:
        image: The Pillow image, set up for a reduced decode when `scale` > 1.
        cost: Estimated peak bytes of decoding, converting and encoding it,
            including the file's own bytes.
        scale: 1, or the JPEG reduction (2, 4 or 8 times smaller on each side).
    """

    image: Image.Image
    cost: int
    scale: int = 1


@dataclass(frozen=True)
class Stored:
    """A validated image, ready to be written."""

    sha256: str
    ext: str
    payload: bytes
    width: int
    height: int
    scale: int = 1


@functools.cache
def _open_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def open_image(data: bytes, limits: ImportLimits) -> Opened | str:
    """Parse the header only (no pixels decoded) and apply the pixel and memory limits.

    Runs in the importing thread: Pillow's decompression-bomb warning goes through
    the process-wide `warnings` filters, which are not thread-safe to change.

    Returns:
        The opened image, or why the file is skipped.
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
        img.close()
        return (f"too many pixels (decompression-bomb limit), not decoded: {width}x{height} > "
                f"max_image_pixels={limits.max_image_pixels}")
    if width < 1 or height < 1:
        img.close()
        return f"undecodable: empty image {width}x{height}"
    # A JPEG's EXIF block is in its header; other formats may keep theirs after the
    # pixels (reading it would decode them), so a rotated copy is counted for them.
    rotated = True
    if img.format in _JPEG_FORMATS:
        with contextlib.suppress(Exception):  # a broken block is reported by finish_image
            rotated = img.getexif().get(_EXIF_ORIENTATION, 1) in range(2, 9)
    mode, transparency = img.mode, "transparency" in img.info
    memory = limits.max_import_memory_mb << 20
    decoded, peak = decode_bytes(mode, width, height, rotated, transparency)
    if decoded <= limits.max_image_bytes and len(data) + peak <= memory:
        return Opened(img, len(data) + peak)
    for scale in _DRAFT_SCALES if img.format in _JPEG_FORMATS else ():
        w, h = -(-width // scale), -(-height // scale)
        decoded_s, peak_s = decode_bytes(mode, w, h, rotated, transparency)
        if decoded_s <= limits.max_image_bytes and len(data) + peak_s <= memory:
            img.draft(mode, (max(1, width // scale), max(1, height // scale)))
            if img.size == (w, h):
                return Opened(img, len(data) + peak_s, scale)
            break
    img.close()
    if decoded > limits.max_image_bytes:
        return (f"too large to decode: {width}x{height} {mode} needs {human_bytes(decoded)}"
                f" > max_image_bytes={human_bytes(limits.max_image_bytes)}")
    return (f"too large to decode: {width}x{height} {mode} needs about "
            f"{human_bytes(len(data) + peak)} > max_import_memory_mb="
            f"{limits.max_import_memory_mb}")


def decode_bytes(mode: str, width: int, height: int, rotated: bool = False,
                 transparency: bool = False) -> tuple[int, int]:
    """Bytes of the decoded image, and the estimated peak of decoding, converting and encoding it.

    Args:
        mode: Pillow mode of the decoded image.
        width: Width in pixels.
        height: Height in pixels.
        rotated: A rotated copy (EXIF orientation) may be made.
        transparency: The image has a transparent colour (composited on white).

    Returns:
        `(decoded, peak)`: the pixels as Pillow holds them, and the most memory the
        steps of `finish_image` hold at once (the decoded image while its rotated
        or converted copy is made, then the copy while it is encoded).
    """
    pixels = width * height
    decoded = pixels * _PIXEL_BYTES.get(mode, 4)
    gray = mode in _GRAY_MODES
    out = pixels * (1 if gray else 4)
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        # The 8-bit result, plus one strip read out and widened to 8 bytes a pixel.
        converting = decoded + out + 10 * min(pixels, _STRIP_PIXELS)
    elif mode in _ALPHA_MODES or transparency:
        # An RGBA copy (unless it is RGBA already), the white canvas, the RGB result.
        converting = decoded + (0 if mode == "RGBA" else 4 * pixels) + 4 * pixels + out
    elif mode in ("RGB", "L"):
        converting = out = decoded  # encoded as it is
    else:
        converting = decoded + out
    encoding = out + pixels * (1 if gray else 3)  # the encoder's buffer; its output is no larger
    return decoded, max(2 * decoded if rotated else 0, converting, encoding)


def finish_image(opened: Opened | str) -> Stored | str:
    """Decode, normalise and encode one opened image (runs in a worker thread).

    Each copy replaces the image it came from, which is closed at once, so no
    more than two full-size images exist at a time (`decode_bytes`).
    """
    if isinstance(opened, str):
        return opened
    source = opened.image
    try:
        source.load()
        img = _upright(source)
        rgb = _to_rgb_or_l(img)
        if rgb is not img:
            img.close()
        payload, ext = _encode(rgb, keep_jpeg=rgb is source and source.format in _JPEG_FORMATS)
        return Stored(hashlib.sha256(payload).hexdigest(), ext, payload, *rgb.size,
                      scale=opened.scale)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken data
        return f"undecodable: {exc}"
    finally:
        source.close()


def _encode(img: Image.Image, keep_jpeg: bool) -> tuple[bytes, str]:
    """The image's pixels as a new file: `(bytes, extension)`, no metadata carried over."""
    img.info.clear()  # ICC profiles, text chunks, comments: nothing but pixels is kept
    buf = io.BytesIO()
    if not keep_jpeg:
        img.save(buf, "PNG", compress_level=_PNG_COMPRESS_LEVEL)
        return buf.getvalue(), ".png"
    try:
        img.save(buf, "JPEG", quality="keep")
    except (ValueError, OSError):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=_JPEG_FALLBACK_QUALITY)
    return buf.getvalue(), ".jpg"


def _upright(img: Image.Image) -> Image.Image:
    """`img`, or its copy turned as its EXIF orientation asks (then `img` is closed)."""
    if img.getexif().get(_EXIF_ORIENTATION, 1) not in range(2, 9):
        return img
    turned = ImageOps.exif_transpose(img)
    img.close()
    return turned


def _to_rgb_or_l(img: Image.Image) -> Image.Image:
    """`img` itself when it is plain RGB or L, else an RGB/L copy that looks the same.

    Alpha is composited on white, 16-bit and float images are scaled (not
    clipped) to 8 bits.

    Raises:
        ValueError: The colour mode cannot be converted.
    """
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "F":
        return _scale_to_8bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    if img.mode in ("RGB", "L"):
        return img
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Grayscale "L" from a 16-bit or float image, keeping the whole range visible.

    Integer images use integer arithmetic (round(v * 255 / 65535) for 16-bit data)
    and float images float64, both one strip of rows at a time, so the extra memory
    is the 8-bit result plus one strip.
    """
    width, height = img.size
    rows = max(1, _STRIP_PIXELS // width)
    strips = [(y, min(height, y + rows)) for y in range(0, height, rows)]

    def strip(y0: int, y1: int) -> np.ndarray:
        return np.asarray(img.crop((0, y0, width, y1)))

    out = np.empty((height, width), np.uint8)
    if img.mode == "F":
        lo, hi = np.inf, -np.inf
        for y0, y1 in strips:
            a = np.nan_to_num(strip(y0, y1).astype(np.float64))
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
        factor = 255.0 / max(hi - lo, 1e-12)
        for y0, y1 in strips:
            a = np.nan_to_num(strip(y0, y1).astype(np.float64), copy=False)
            a -= lo
            a *= factor
            np.rint(a, out=a)
            out[y0:y1] = np.clip(a, 0, 255, out=a)
    else:
        lo, hi = img.getextrema()
        lo, hi = (0, 65535) if lo >= 0 and hi <= 65535 else (int(lo), int(hi))
        span = max(hi - lo, 1)
        for y0, y1 in strips:
            a = strip(y0, y1).astype(np.int64)  # in place from here: one buffer per strip
            a -= lo
            a *= 255
            a += span // 2
            a //= span
            out[y0:y1] = a
    return Image.fromarray(out, "L")
