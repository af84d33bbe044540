"""Adaptations in a background process, as the Adapt page starts them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.runs import wait_for
from tlcore.adapt.jobs import adapt_status, forget_adapt, start_adapt
from tlcore.errors import ConfigError


def test_a_background_adaptation_reports_progress_then_its_report(lab):
    ws, run_id = lab
    job = start_adapt(run_id, "inverted", methods=["coral"], scorer="mano", ws=ws)
    steps = set()

    def finished():
        status = adapt_status(job)
        steps.add(status.step)
        return None if status.running else status

    status = wait_for(finished, "the adaptation", timeout=120, interval=0.1)
    assert status.error is None, status.error
    assert status.report["target"] == "inverted" and status.report["run_id"]
    assert [m["name"] for m in status.report["methods"]] == ["none", "coral"]
    forget_adapt(job)
    assert not job.exists()


def test_a_failing_adaptation_ends_with_one_line(lab):
    ws, _ = lab
    job = start_adapt("0123456789ab", "inverted", scorer="mano", ws=ws)
    status = wait_for(lambda: (s := adapt_status(job)) and not s.running and s, "the failure",
                      timeout=120, interval=0.1)
    assert status.report is None and "No run with id '0123456789ab'" in status.error
    forget_adapt(job)


def test_bad_requests_start_nothing(lab):
    ws, run_id = lab
    with pytest.raises(ConfigError):
        start_adapt(run_id, "inverted", methods=["jdot"], scorer="mano", ws=ws)
    with pytest.raises(ConfigError):
        start_adapt(run_id, "inverted", scorer="accuracy", ws=ws)
    assert not list(ws.tmp_dir.glob("job-adapt-*"))


def test_the_dashboard_side_imports_no_framework_nor_skada():
    code = ("import sys, tlcore.adapt, tlcore.adapt.jobs, tlcore.adapt.adapted, tlcore.ui.adapt, "
            "tlcore.charts.adapt, tlcore.cli.adapt; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'skada', 'ot', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
