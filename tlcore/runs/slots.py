"""GPU slots of the local executor: which GPUs workers use, and which run holds each.

With N visible GPUs, up to N workers train at once, each pinned to its own GPU
through `CUDA_VISIBLE_DEVICES`, so TensorFlow in one worker never takes another
GPU's memory. A running run holds its slot in the store (`runs.gpu`); claiming
a run takes the first free slot in the same transaction (`RunStore.claim_next`),
so two processes never pin two runs to one GPU.

The slots are `$TLCORE_GPUS` ("0,1", GPU UUIDs, or "none"), else the server's own
`CUDA_VISIBLE_DEVICES`, else every GPU `nvidia-smi -L` lists. Without GPUs there
are no slots and the worker limit is `$TLCORE_MAX_WORKERS`, as on a laptop.
No TensorFlow here: the dashboard reads it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from typing import Any

from tlcore.errors import ConfigError
from tlcore.settings import env_number

ENV_MAX_WORKERS = "TLCORE_MAX_WORKERS"
ENV_GPUS = "TLCORE_GPUS"
# The slot a worker was pinned to (set with CUDA_VISIBLE_DEVICES when it is spawned).
ENV_SLOT = "TLCORE_GPU_SLOT"
CUDA_ENV = "CUDA_VISIBLE_DEVICES"
_NO_GPUS = ("none", "cpu")
# A CUDA device: its index, or its UUID as nvidia-smi prints it (GPU-…, MIG-…).
_DEVICE_RE = re.compile(r"\d+|(GPU|MIG)-[0-9A-Za-z-]+")


def gpu_slots() -> tuple[str, ...]:
    """The GPUs local workers are pinned to, one worker each; () without GPUs.

    Raises:
        ConfigError: if `$TLCORE_GPUS` is set but is not a comma-separated list of
            GPU indices or UUIDs (or "none").
    """
    raw = os.environ.get(ENV_GPUS, "").strip()
    if raw:
        return _parse(raw, ENV_GPUS)
    visible = os.environ.get(CUDA_ENV)
    if visible is not None:
        return () if visible.strip() in ("", "-1") else _parse(visible.strip(), CUDA_ENV)
    return _nvidia_smi_gpus()


def max_workers() -> int:
    """How many runs may train at once: `$TLCORE_MAX_WORKERS`, default 1.

    Raises:
        ConfigError: if the variable is set but not a positive integer.
    """
    return env_number(ENV_MAX_WORKERS, 1, "a positive integer (1 for one GPU)", parse=int)


def worker_limit(gpus: tuple[str, ...] | None = None) -> int:
    """How many runs the local executor trains at once.

    One per GPU slot (`gpu_slots()`), capped by `$TLCORE_MAX_WORKERS` when it is
    set; without GPUs, `max_workers()`.

    Args:
        gpus: The slots, when the caller has them already.

    Raises:
        ConfigError: if `$TLCORE_MAX_WORKERS` or `$TLCORE_GPUS` is unusable.
    """
    gpus = gpu_slots() if gpus is None else gpus
    if not gpus:
        return max_workers()
    if os.environ.get(ENV_MAX_WORKERS, "").strip():
        return min(max_workers(), len(gpus))
    return len(gpus)


def _parse(raw: str, variable: str) -> tuple[str, ...]:
    if raw.lower() in _NO_GPUS:
        return ()
    ids = tuple(part.strip() for part in raw.split(","))
    bad = [i for i in ids if not _DEVICE_RE.fullmatch(i)]
    if bad or len(set(ids)) != len(ids):
        raise ConfigError(
            f"{variable} must list distinct GPUs by index or UUID, comma-separated (e.g. 0,1), "
            f"or be none. Received: {variable}={raw!r}")
    return ids


@functools.cache
def _nvidia_smi_gpus() -> tuple[str, ...]:
    """Indices of the GPUs `nvidia-smi -L` lists (asked once per process)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ()
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(str(i) for i, line in enumerate(
        line for line in out.splitlines() if line.startswith("GPU ")))


def pinned_env(slot: str | None) -> dict[str, str]:
    """The environment that pins a worker to `slot` (nothing when there are no slots)."""
    return {} if slot is None else {CUDA_ENV: slot, ENV_SLOT: slot}


def own_slot() -> str | None:
    """The slot this worker was pinned to, or None."""
    return os.environ.get(ENV_SLOT) or None


def occupancy(slots: tuple[str, ...], running: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Each slot with the running run that holds it (None when free), in slot order."""
    holders = {run["gpu"]: run for run in running if run.get("gpu") is not None}
    return [(slot, holders.get(slot)) for slot in slots]
