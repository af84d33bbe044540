"""`make run` serves the packaged dashboard on loopback unless HOST says otherwise."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_command(*args: str) -> str:
    out = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), *args, "run"],
                         capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if "tlcore studio" in line)


def test_make_run_binds_to_loopback_by_default():
    assert "--host 127.0.0.1" in _run_command()


def test_host_shares_on_the_network_by_choice():
    assert "--host 0.0.0.0" in _run_command("HOST=0.0.0.0")
