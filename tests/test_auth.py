"""Roles and actions, the roles file, the per-user run limit, and owners through the core."""

from __future__ import annotations

import os
import time

import pytest

from tlcore import auth
from tlcore import data as datasets_api
from tlcore.auth import (
    BROWSE,
    IMPORT,
    LAUNCH,
    MANAGE_ALL,
    MANAGE_OWN,
    OPERATOR,
    SERVER_IMPORT,
    Actor,
)
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.errors import (
    ConfigError,
    PermissionDeniedError,
    QuotaError,
    RunStateError,
    TLCoreError,
)
from tlcore.results import transfer_study as transferstudy
from tlcore.runs import launch, queue, sweeps
from tlcore.store import COMPLETED, FAILED, QUEUED, RUNNING, RunStore

ALICE = Actor("alice@example.com", "Alice", "member")
BOB = "bob@example.com"
QUOTA = ("You have 2 runs queued or running, the most one person may have at once "
         "(TLCORE_MAX_RUNS_PER_USER=2). Wait for one to finish or cancel one.")


def _as(role: str) -> Actor:
    return Actor(ALICE.user, ALICE.name, role)


# ---- roles and actions --------------------------------------------------------------
@pytest.mark.parametrize("role, allowed", [
    ("viewer", {BROWSE}),
    ("member", {BROWSE, IMPORT, LAUNCH, MANAGE_OWN}),
    ("admin", {BROWSE, IMPORT, LAUNCH, MANAGE_OWN, MANAGE_ALL, SERVER_IMPORT}),
])
def test_each_role_allows_its_actions(role, allowed):
    actor = _as(role)
    assert {a for a in auth.ACTIONS if auth.can(actor, a)} == allowed
    # on their own objects, nothing changes
    assert {a for a in auth.ACTIONS if auth.can(actor, a, owner=actor.user)} == allowed


@pytest.mark.parametrize("role, own, others, operators", [
    ("viewer", False, False, False),
    ("member", True, False, False),
    ("admin", True, True, True),
])
def test_managing_depends_on_the_owner(role, own, others, operators):
    actor = _as(role)
    for action in (MANAGE_OWN, MANAGE_ALL, LAUNCH):
        if action == MANAGE_ALL and role != "admin":
            assert not auth.can(actor, action, owner=actor.user)
            continue
        assert auth.can(actor, action, owner="ALICE@example.com") is own  # ids ignore case
        assert auth.can(actor, action, owner=BOB) is others
        assert auth.can(actor, action, owner=None) is operators


def test_the_operator_may_do_everything_to_anything():
    assert OPERATOR == Actor(None, "operator", "admin")
    for action in auth.ACTIONS:
        for owner in (None, BOB):
            assert auth.can(OPERATOR, action, owner=owner)
            auth.require(OPERATOR, action, owner=owner)


def test_refusals_are_one_line_and_say_who_may(ws):
    with pytest.raises(PermissionDeniedError) as info:
        auth.require(ALICE, MANAGE_OWN, owner=BOB, what="cancel this run")
    assert str(info.value) == (
        "Only its owner (bob@example.com) or an admin can cancel this run; you are signed in "
        "as alice@example.com (member).")
    assert isinstance(info.value, TLCoreError) and isinstance(info.value, PermissionError)
    with pytest.raises(PermissionDeniedError) as info:
        auth.require(ALICE, LAUNCH, owner=None, what="resume this run")
    assert str(info.value).startswith("Only its owner (operator) or an admin can resume")
    with pytest.raises(PermissionDeniedError) as info:
        auth.require(_as("viewer"), IMPORT, ws=ws)
    assert str(info.value) == (
        "Viewers can browse, compare, evaluate and predict; to import a dataset, you need the "
        "member role, and you are signed in as alice@example.com (viewer). Ask an admin to "
        f"change your role in {ws.root / 'roles.toml'}.")
    with pytest.raises(PermissionDeniedError, match=(
            r"^Members can .*; to use paths on the server, you need the admin role, .*"
            r"Ask an admin to change your role in roles.toml in the workspace.$")):
        auth.require(ALICE, SERVER_IMPORT)
    with pytest.raises(PermissionDeniedError, match="to delete this dataset, you need the "
                                                    "admin role"):
        auth.require(_as("viewer"), MANAGE_OWN, owner=BOB, what="delete this dataset")
    with pytest.raises(ConfigError, match="action must be one of browse, .*Received: 'fly'"):
        auth.can(ALICE, "fly")


# ---- the roles file -----------------------------------------------------------------------
def _write_roles(ws, text: str) -> None:
    path = ws.root / "roles.toml"
    path.write_text(text, encoding="utf-8")
    # a rewrite within the same clock tick still counts as a change
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))


def test_roles_come_from_the_file_then_the_secrets_then_the_default(ws):
    assert auth.role_for("anyone@example.com", ws) == "member"
    secrets = {"default": "viewer", "users": {"Carol@Example.com": "admin", BOB: "viewer"}}
    assert auth.role_for("carol@example.com", ws, secrets) == "admin"
    assert auth.role_for("anyone@example.com", ws, secrets) == "viewer"
    _write_roles(ws, 'default = "member"\n\n[users]\n"bob@example.com" = "admin"\n'
                     '"DAVE@example.com" = "viewer"\n')
    assert auth.role_for(BOB, ws, secrets) == "admin"  # the file wins
    assert auth.role_for("dave@example.com", ws) == "viewer"
    assert auth.role_for("carol@example.com", ws, secrets) == "admin"
    assert auth.role_for("anyone@example.com", ws, secrets) == "member"
    _write_roles(ws, '[users]\n"bob@example.com" = "viewer"\n')  # read again once changed
    assert auth.role_for(BOB, ws) == "viewer"
    assert auth.role_for("anyone@example.com", ws, secrets) == "viewer"


@pytest.mark.parametrize("text, fragment", [
    ('default = "boss"\n', "default must be one of viewer, member, admin. Received: "
                           "default='boss'"),
    ('[users]\n"bob@example.com" = "owner"\n',
     "the role of 'bob@example.com' must be one of viewer, member, admin. Received: 'owner'"),
    ('users = "bob"\n', "users must be a table."),
    ('admins = ["bob"]\n', "unknown key(s) admins."),
    ('[users\n', "is not valid TOML"),
])
def test_a_bad_roles_file_is_one_line_naming_the_file(ws, text, fragment):
    _write_roles(ws, text)
    with pytest.raises(ConfigError) as info:
        auth.role_for(BOB, ws)
    message = str(info.value)
    assert fragment in message and str(ws.root / "roles.toml") in message
    assert "\n" not in message


def test_bad_secrets_roles_are_refused(ws):
    with pytest.raises(ConfigError, match=r"^\[tlcore.roles\] in Streamlit's secrets: default "
                                          r"must be one of"):
        auth.role_for(BOB, ws, {"default": "root"})


# ---- the per-user run limit --------------------------------------------------------------
@pytest.fixture
def dataset(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=32)
    datasets_api.import_dataset(folder, "shapes", ws=ws, owner=BOB)
    return "shapes"


@pytest.fixture
def no_workers(monkeypatch):
    """Queued runs stay queued: these tests are about the queue, not training."""
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])


def _config(dataset: str) -> RunConfig:
    return RunConfig.from_dict({"dataset": dataset, "image_size": 32,
                                "base": {"weights": "none"}, "train": {"epochs": 1}})


def test_the_limit_setting_is_checked(monkeypatch):
    assert auth.max_runs_per_user() is None
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", " ")
    assert auth.max_runs_per_user() is None
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "3")
    assert auth.max_runs_per_user() == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", bad)
        with pytest.raises(ConfigError, match=f"must be a positive integer, or empty for no "
                                              f"limit. Received: TLCORE_MAX_RUNS_PER_USER='{bad}'"):
            auth.max_runs_per_user()


def test_launch_records_the_owner_and_stops_at_the_limit(ws, dataset, no_workers, monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "2")
    store = RunStore(ws)
    first = launch.launch(_config(dataset), ws=ws, owner=ALICE.user)
    second = launch.launch(_config(dataset), ws=ws, owner=ALICE.user)
    store.update_run(second, status=RUNNING)
    assert store.get_run(first)["owner"] == ALICE.user
    with pytest.raises(QuotaError) as info:
        launch.launch(_config(dataset), name="third", ws=ws, owner=ALICE.user)
    assert str(info.value) == QUOTA and isinstance(info.value, RunStateError)
    assert [r["id"] for r in store.list_runs()] == [first, second]
    assert sorted(p.name for p in ws.runs_dir.iterdir()) == sorted([first, second])
    # other people, and the operator, are not held back by Alice's runs
    other = launch.launch(_config(dataset), ws=ws, owner=BOB)
    operator = [launch.launch(_config(dataset), ws=ws) for _ in range(3)]
    assert store.get_run(other)["owner"] == BOB
    assert {store.get_run(r)["owner"] for r in operator} == {None}
    # a finished run makes room again
    store.update_run(first, status=COMPLETED)
    assert store.get_run(launch.launch(_config(dataset), ws=ws, owner=ALICE.user))["owner"] == (
        ALICE.user)


def test_resume_keeps_the_owner_and_counts_against_their_limit(ws, dataset, no_workers,
                                                                monkeypatch):
    store = RunStore(ws)
    failed = store.create_run(_config(dataset), status=FAILED, owner=ALICE.user)
    launch.resume(failed, ws)
    assert (store.get_run(failed)["status"], store.get_run(failed)["owner"]) == (
        QUEUED, ALICE.user)
    store.update_run(failed, status=FAILED)
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "2")
    for _ in range(2):
        store.create_run(_config(dataset), owner=ALICE.user)
    with pytest.raises(QuotaError, match="^You have 2 runs queued or running"):
        launch.resume(failed, ws)
    assert store.get_run(failed)["status"] == FAILED


def test_a_sweep_records_its_owner_and_respects_the_limit(ws, dataset, monkeypatch):
    space = {"head.dropout": {"choices": [0.0, 0.5]}}
    sweep_id = sweeps.create(ws, _config(dataset), space, 2, owner=ALICE.user)
    assert sweeps.attributes(ws, sweep_id)["owner"] == ALICE.user
    assert sweeps.summary(ws, sweep_id)["owner"] == ALICE.user
    operators = sweeps.create(ws, _config(dataset), space, 2)
    assert {s["id"]: s["owner"] for s in sweeps.list_sweeps(ws)} == {
        sweep_id: ALICE.user, operators: None}
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "1")
    RunStore(ws).create_run(_config(dataset), owner=ALICE.user)
    with pytest.raises(QuotaError, match="^You have 1 run queued or running"):
        sweeps.create(ws, _config(dataset), space, 2, owner=ALICE.user)
    assert len(sweeps.list_sweeps(ws)) == 2


def test_a_transfer_study_is_refused_whole_when_it_passes_the_limit(ws, dataset, no_workers,
                                                                    monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "3")
    with pytest.raises(QuotaError) as info:
        transferstudy.launch(ws, dataset, [2, 4], ["image_size=32"], owner=ALICE.user)
    assert str(info.value) == (
        "This queues 4 runs and you have 0 runs queued or running, more than the 3 one person "
        "may have at once (TLCORE_MAX_RUNS_PER_USER=3). Queue fewer, or wait for some to "
        "finish.")
    assert RunStore(ws).list_runs() == []
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "5")
    RunStore(ws).create_run(_config(dataset), owner=ALICE.user)
    transferstudy.launch(ws, dataset, [2, 4], ["image_size=32"], owner=ALICE.user)
    assert RunStore(ws).count_active(ALICE.user) == 5


def test_runs_launched_together_are_checked_before_any_is_queued(ws, dataset, no_workers):
    good = _config(dataset)
    with pytest.raises(ConfigError, match="^A run name must be"):
        launch.launch_many([(good, "first"), (good, "second\nline")], ws=ws, owner=ALICE.user)
    assert RunStore(ws).list_runs() == []
    ids = launch.launch_many([(good, "first"), (good, "second")], ws=ws, owner=ALICE.user)
    assert [RunStore(ws).get_run(run_id)["name"] for run_id in ids] == ["first", "second"]
    assert all((ws.run(run_id).config).is_file() for run_id in ids)


# ---- owners of datasets ------------------------------------------------------------------
def test_imports_record_their_owner(ws, dataset, tmp_path):
    store = RunStore(ws)
    assert store.dataset_owner(dataset) == BOB
    folder = write_class_folders(tmp_path / "mine", ("a", "b"), per_class=6, size=16)
    datasets_api.import_dataset(folder, "mine", ws=ws)
    assert store.dataset_owner("mine") is None
    source = write_class_folders(ws.import_dir / "bg", ("a", "b"), per_class=5, size=16)
    job = datasets_api.start_import("bg", source=source, ws=ws, owner=ALICE.user)
    deadline = time.monotonic() + 60
    while (status := datasets_api.import_status(job)).running:
        assert time.monotonic() < deadline, "the import worker did not finish"
        time.sleep(0.05)
    assert status.error is None
    assert store.dataset_owner("bg") == ALICE.user
    datasets_api.forget_import(job)
