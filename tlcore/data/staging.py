"""Staging folders under `<workspace>/tmp/`: who owns them, and removing abandoned ones.

An import stages its files in `tmp/import-*`, a browser import keeps its request,
upload and progress in `tmp/job-*`, the demo writes its images in `tmp/demo-*`,
a delete moves the dataset to `tmp/delete-*` before removing it, and the
Evaluate page's Predict tab keeps uploaded images in `tmp/predict-*`. Each holds
an owner file naming the host and process that works in it. A process that is
killed cannot clean up after itself, so every import start (and `python -m
tlcore cache clear`) removes staging folders older than `STALE_AFTER_S` whose
owner process is gone. Folders without an owner (older versions) or owned on
another host go after `UNOWNED_STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from tlcore import processes
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace, free_bytes

PREFIXES = ("import-", "job-", "upload-", "demo-", "delete-", "predict-")
OWNER_FILE = ".owner"
STALE_AFTER_S = 10 * 60
UNOWNED_STALE_AFTER_S = 24 * 3600


def make_staging(ws: Workspace, prefix: str) -> Path:
    """A new folder `tmp/<prefix>...`, owned by this process.

    Args:
        ws: The workspace.
        prefix: One of `PREFIXES`, optionally followed by a label (`"import-pets-"`).
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=ws.tmp_dir))
    try:
        claim(folder)
    except OSError:  # a full disk: the caller reports it, and no empty folder stays behind
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def claim(folder: Path) -> None:
    """Record this process as the owner of `folder` (it takes over the work in it)."""
    tmp = folder / f"{OWNER_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    os.replace(tmp, folder / OWNER_FILE)


def release(folder: Path) -> None:
    """Remove the owner file, before `folder` becomes a dataset."""
    with contextlib.suppress(FileNotFoundError):
        (folder / OWNER_FILE).unlink()


def owner_alive(folder: Path) -> bool | None:
    """Whether the owner of `folder` still runs; None when that cannot be known here."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        host, pid = owner["host"], int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return None
    return processes.alive(pid)


def remove_stale(ws: Workspace, older_than: float = STALE_AFTER_S) -> tuple[int, int]:
    """Remove abandoned staging folders.

    Args:
        ws: The workspace.
        older_than: Seconds since a folder last changed before it may go.

    Returns:
        `(folders removed, bytes freed)`.
    """
    now = time.time()
    removed = freed = 0
    for folder in sorted(ws.tmp_dir.iterdir()):
        if not folder.name.startswith(PREFIXES):
            continue
        try:
            st = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink():
            continue
        age = now - st.st_mtime
        alive = owner_alive(folder)
        if alive or age < (older_than if alive is False else UNOWNED_STALE_AFTER_S):
            continue
        size = _tree_bytes(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed, freed = removed + 1, freed + size
    return removed, freed


def _tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def disk_full_error(path: Path, exc: OSError) -> DatasetError:
    """The one-line error for a full disk while writing under `path`."""
    try:
        free = f"{free_bytes(path) / 1e6:.0f} MB"
    except OSError:
        free = "no space"
    return DatasetError(
        f"Import stopped: disk full: {free} free in {path}; nothing was kept. Free some space "
        f"(`python -m tlcore cache clear` removes caches that are rebuilt when needed) and "
        f"import again. Received: {exc.strerror or exc}")
