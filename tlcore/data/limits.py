"""Safety limits of one import, and reading under a byte limit.

Limits (`ImportLimits`) have the defaults below; each can be set from the
environment:

    TLCORE_MAX_FILES              100000      entries in a zip, files in a folder, CSV rows
    TLCORE_MAX_TOTAL_BYTES        4 GiB       uncompressed bytes read by one import
    TLCORE_MAX_FILE_BYTES         256 MiB     one file; larger files are skipped
    TLCORE_MAX_COMPRESSION_RATIO  200         zip: uncompressed / compressed size, checked
                                              per entry and overall for entries over 1 MiB
    TLCORE_MAX_IMAGE_PIXELS       89478485    width x height; larger images are skipped
                                              before decoding (Pillow's own hard limit of
                                              twice its MAX_IMAGE_PIXELS still applies)
    TLCORE_MAX_IMAGE_BYTES        256 MiB     one decoded image, width x height x bytes per
                                              pixel as Pillow holds it (16-bit gray: 2, RGB:
                                              4); larger JPEGs are decoded at 1/2, 1/4 or 1/8
                                              scale, other larger images are skipped unread
    TLCORE_MAX_IMPORT_MEMORY_MB   1024        estimated memory of all images being decoded
                                              at once (input bytes, pixels, conversions and
                                              the encoded copy); decoding threads wait for
                                              room, and an image that alone needs more is
                                              skipped
    TLCORE_MIN_PER_CLASS          5           valid images each class needs
    TLCORE_MIN_CLASSES            2           classes a dataset needs
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import IO, Any

from tlcore.errors import ConfigError

_MiB = 1 << 20
_GiB = 1 << 30
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportLimits:
    """Safety limits and requirements of one import.

    Attributes:
        max_files: Most entries a zip, files a folder or rows a CSV may have.
        max_total_bytes: Most uncompressed bytes one import may read.
        max_file_bytes: Largest single file; larger files are skipped.
        max_compression_ratio: Largest uncompressed/compressed ratio of a zip, per
            entry and overall (checked for sizes over 1 MiB).
        max_image_pixels: Largest width x height; larger images are skipped unread.
        max_image_bytes: Largest decoded image in bytes (width x height x bytes per
            pixel); larger JPEGs are decoded at reduced scale, others skipped unread.
        max_import_memory_mb: Most memory, in MiB, that the images being decoded at
            once may need together (estimated from their headers).
        min_per_class: Valid images each class needs.
        min_classes: Classes a dataset needs (at least 2).
    """

    max_files: int = 100_000
    max_total_bytes: int = 4 * _GiB
    max_file_bytes: int = 256 * _MiB
    max_compression_ratio: float = 200.0
    max_image_pixels: int = 89_478_485
    max_image_bytes: int = 256 * _MiB
    max_import_memory_mb: int = 1024
    min_per_class: int = 5
    min_classes: int = 2

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            low = 2 if f.name == "min_classes" else 1
            kind = int | float if f.name == "max_compression_ratio" else int
            if isinstance(value, bool) or not isinstance(value, kind) or value < low:
                what = "a number" if f.name == "max_compression_ratio" else "an integer"
                raise ConfigError(f"ImportLimits.{f.name} must be {what} >= {low}. "
                                  f"Received: {f.name}={value!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ImportLimits:
        """Defaults, overridden by `TLCORE_<FIELD>` environment variables.

        Raises:
            ConfigError: A variable is not a number or is out of range.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = f"TLCORE_{f.name.upper()}"
            if environ.get(var):
                kind = float if f.name == "max_compression_ratio" else int
                try:
                    values[f.name] = kind(environ[var])
                except ValueError:
                    raise ConfigError(f"${var} must be a {kind.__name__}. "
                                      f"Received: {var}={environ[var]!r}") from None
        return cls(**values)


class TooLarge(Exception):
    """A read went over its byte limit."""


def read_limited(fh: IO[bytes], limit: int) -> bytes:
    """Read all of `fh`, raising TooLarge as soon as more than `limit` bytes arrive."""
    chunks, n = [], 0
    while chunk := fh.read(min(_READ_CHUNK, limit - n + 1)):
        n += len(chunk)
        if n > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def human_bytes(n: float) -> str:
    """`n` bytes for people: "512 B", "3.2 MiB", "4.0 GiB"."""
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):  # noqa: B007 - the last unit is used below
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
