"""`tlcore studio [--host H] [--port P] [--workspace DIR]`: serve the dashboard.

The dashboard's files ship inside the package (`tlcore.ui.studio`), so the
command works from any folder: it runs `streamlit run` on them in this process's
place, with the workspace in `TLCORE_HOME`. Loopback only by default; `--host
0.0.0.0` shares it on the network (configure a login first, see README).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tlcore.errors import ConfigError
from tlcore.ui.studio import APP
from tlcore.workspace import ENV_HOME


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `studio` command."""
    p = subparsers.add_parser("studio", help="serve the dashboard in the browser",
                              description="Serve the dashboard (Streamlit) until interrupted.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--workspace", metavar="DIR",
                   help=f"the workspace folder (default ${ENV_HOME}, else ./workspace)")
    p.set_defaults(func=_cmd_studio)


def command(host: str, port: int) -> list[str]:
    """The `streamlit run` command line that serves the dashboard."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host,
            "--server.port", str(port)]


def _cmd_studio(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65535. Received: {args.port}")
    if args.workspace:
        os.environ[ENV_HOME] = str(Path(args.workspace).expanduser().resolve())
    argv = command(args.host, args.port)
    os.execv(argv[0], argv)
    return 0  # not reached: streamlit runs in this process's place
