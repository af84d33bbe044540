"""`tlcore studio` serves the dashboard shipped inside the package, from any folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

from tlcore.cli import studio as studio_command
from tlcore.ui import studio

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_tlcore_command_is_the_cli():
    (entry,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "tlcore"]
    assert entry.value == "tlcore.cli:main"


def test_studio_serves_the_dashboard_from_another_folder(tmp_path):
    port = _free_port()
    workspace = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TLCORE_HOME", None)
    proc = subprocess.Popen([sys.executable, "-m", "tlcore", "studio", "--port", str(port),
                             "--workspace", str(workspace)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline, health = time.monotonic() + 90, None
        while time.monotonic() < deadline and health != "ok":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as answer:
                    health = answer.read().decode()
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.3)
        assert health == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert answer.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert not (tmp_path / "workspace").exists()  # --workspace, not ./workspace


def test_studio_command_runs_streamlit_on_the_packaged_app():
    argv = studio_command.command("0.0.0.0", 8600)
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]).name == "app.py"
    assert Path(argv[4]).with_name("app_pages").is_dir()
    assert argv[5:] == ["--server.address", "0.0.0.0", "--server.port", "8600"]


def test_the_wheel_carries_the_dashboard_and_the_command(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("tlcore-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    pages = {f"tlcore/ui/studio/app_pages/{p.name}" for p in studio.PAGES_DIR.glob("*.py")}
    assert {"tlcore/ui/studio/app.py", "tlcore/ui/studio/.streamlit/config.toml",
            "tlcore/adapt/__init__.py", *pages} <= names and len(pages) == 7
    assert any(n.startswith("tlcore/store/migrations/versions/0001") for n in names)
    assert "tlcore = tlcore.cli:main" in entry_points
