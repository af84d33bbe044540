"""`python -m tlcore ...` calls from a page: the work that needs TensorFlow.

The UI process never imports TensorFlow, so evaluation, prediction and export
run as CLI subprocesses under a spinner; a failure is shown as the CLI's
one-line message, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys

import streamlit as st

from tlcore.runs import children
from tlcore.ui.text import plain
from tlcore.workspace import Workspace

CLI_TIMEOUT_S = 3600


def error_line(stderr: str) -> str:
    """The one-line message of a failed CLI call.

    Args:
        stderr: The call's standard error.

    Returns:
        Its last `error: ...` line without the prefix, else its last line.
    """
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    return lines[-1] if lines else "the command failed without a message"


def run_cli(ws: Workspace, args: list[str], message: str,
            timeout_s: float = CLI_TIMEOUT_S) -> str | None:
    """Run `python -m tlcore ARGS` in the workspace under a spinner.

    The child gets the same environment as a training worker (`children.worker_env`).

    Args:
        ws: The workspace the command works in.
        args: The command and its arguments, e.g. `["export", run_id, "--format", "keras"]`.
        message: The spinner's text while it runs (Markdown: pass names through
            `text.plain`).
        timeout_s: Stop the command after this many seconds.

    Returns:
        The command's standard output, or None after showing why it failed (`st.error`).
    """
    with st.spinner(message, show_time=True):
        try:
            proc = subprocess.run([sys.executable, "-m", "tlcore", *args], capture_output=True,
                                  text=True, env=children.worker_env(ws), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            st.error(f"`{args[0]}` took longer than {timeout_s / 60:g} minutes and was stopped.")
            return None
    if proc.returncode != 0:
        st.error(plain(error_line(proc.stderr)))
        return None
    return proc.stdout
