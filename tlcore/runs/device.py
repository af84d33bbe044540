"""What training runs on, asked in a subprocess so that the caller never imports TensorFlow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

from tlcore.runs import children
from tlcore.workspace import Workspace, atomic_write_text

DEVICE_CACHE_FILE = "device.json"  # in the workspace cache folder


def device_info(ws: Workspace | None = None, refresh: bool = False) -> dict[str, Any]:
    """What training runs on, found in a subprocess so the caller never imports TensorFlow.

    The answer is cached in the workspace cache folder; `refresh=True` asks again.

    Returns:
        `{"device": "CPU" or GPU names, "gpus": [names], "mixed_precision": bool,
        "backend": the default Keras backend, "backends": [installed ones]}`, plus
        `"error"` (and device "unknown") when the probe failed.
    """
    ws = ws or Workspace.from_env()
    path = ws.cache_dir / DEVICE_CACHE_FILE
    if not refresh and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # rebuilt below
    env = children.worker_env(ws)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        proc = subprocess.run([sys.executable, "-m", "tlcore", "device", "--json"],
                              capture_output=True, text=True, timeout=300, env=env)
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        info, reason = None, str(exc)
    if not isinstance(info, dict):
        return {"device": "unknown", "gpus": [], "mixed_precision": False,
                "error": f"Could not query the training device: {reason}"}
    atomic_write_text(path, json.dumps(info))
    return info


def gpu_free_bytes() -> list[int] | None:
    """Free memory of each NVIDIA GPU from `nvidia-smi` (no TensorFlow), or None."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return [int(line.strip()) * 2**20 for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
