"""`python -m tlcore adapt`: the JSON report's shape and one-line errors."""

from __future__ import annotations

import json

import pytest

from tlcore.cli import main
from tlcore.store import RunStore


def test_adapt_prints_the_report_as_json(lab, capsys):
    ws, run_id = lab
    assert main(["adapt", run_id, "inverted", "--methods", "coral,ot", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"shift", "methods", "chosen", "run_id"} <= set(report)
    assert {"proxy_a_distance", "domain_accuracy", "mmd2", "mmd_p_value"} <= set(
        report["shift"]["overall"])
    assert [m["name"] for m in report["methods"]] == ["none", "coral", "ot"]
    for m in report["methods"]:
        assert {"name", "score", "target_accuracy"} <= set(m)
        assert isinstance(m["target_accuracy"], float)
    assert report["chosen"] in ("none", "coral", "ot")
    assert RunStore(ws).get_run(report["run_id"])["extra"]["adapted"]["target"] == "inverted"


def test_adapt_prints_a_table_without_json(lab, capsys):
    _, run_id = lab
    assert main(["adapt", run_id, "unlabeled", "--methods", "subspace"]) == 0
    out = capsys.readouterr().out
    assert "Subspace alignment" in out and "<- chosen" in out and "adapted run: " in out


@pytest.mark.parametrize("args, message", [
    (["0123456789ab", "inverted"], "No run with id '0123456789ab'"),
    (["RUN", "missing"], "missing"),
    (["RUN", "inverted", "--methods", "jdot"], "Unknown adaptation method 'jdot'"),
])
def test_adapt_errors_are_one_line_with_a_nonzero_exit(lab, capsys, args, message):
    _, run_id = lab
    assert main(["adapt", *[run_id if a == "RUN" else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_adapting_a_run_that_is_not_completed_is_refused(lab, capsys):
    ws, run_id = lab
    store = RunStore(ws)
    queued = store.create_run(store.get_config(run_id))
    try:
        assert main(["adapt", queued, "inverted"]) == 2
        assert "is queued, not completed" in capsys.readouterr().err
    finally:
        store.delete_run(queued)
