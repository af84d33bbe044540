"""Is a process alive? One answer for worker liveness and staging-folder owners.

`os.kill(pid, 0)` alone counts a zombie (a process that ended but was not yet
reaped) as alive, so where /proc exists its state is read too.
"""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a zombie does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust the signal check
    return not stat[stat.rindex(")") + 2:].startswith("Z")


def command_line(pid: int) -> list[bytes] | None:
    """The arguments process `pid` was started with, or None where /proc cannot tell.

    /proc shows no arguments for a process in the middle of `exec` (a worker just
    spawned): that too is "cannot tell", not "another program".
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.split(b"\0") if raw else None
