"""Team use: signed-in users, their roles, owners, tags and notes on the pages.

Alice and Bob are members, Carol an admin and Dave a viewer (`roles.toml`). Each
test signs one of them in through `at.user`, with an `[auth]` section in the
secrets so that the studio asks for a login. Controls a user may not use are
disabled; tests also draw them enabled and click them, to check that each
action refuses on its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import APP
from tests.support.markup import shown
from tlcore import data
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.runs import queue, sweeps
from tlcore.store import COMPLETED, FAILED, QUEUED, RunStore
from tlcore.ui import access

RUNS, TRAIN = "app_pages/runs.py", "app_pages/train.py"
DATA, SWEEPS = "app_pages/data.py", "app_pages/sweeps.py"
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not-secret",
        "client_id": "studio", "client_secret": "not-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
ROLES = """default = "member"

[users]
"carol@example.com" = "admin"
"dave@example.com" = "viewer"
"""
ALICE, BOB = "alice@example.com", "bob@example.com"
CAROL, DAVE = "carol@example.com", "dave@example.com"


def owned_run(store: RunStore, owner: str | None, name: str, status: str = COMPLETED) -> str:
    """A run of `owner` with a result, written straight to the store."""
    cfg = RunConfig.from_dict({"dataset": "pets", "image_size": 32, "base": {"weights": "none"}})
    run_id = store.create_run(cfg, name, owner=owner)
    now = time.time()
    store.update_run(run_id, status=status, started=now - 60, ended=now, device="CPU",
                     best_val_accuracy=0.8, best_epoch=2,
                     error="Out of memory while training." if status == FAILED else None)
    store.add_epoch(run_id, 1, 1, {"loss": 1.0, "accuracy": 0.6, "val_loss": 1.1,
                                   "val_accuracy": 0.55, "learning_rate": 1e-3,
                                   "epoch_time": 1.0})
    return run_id


@pytest.fixture
def team(ws, tmp_path, monkeypatch) -> dict[str, str]:
    """Bob's dataset "pets", Alice's completed run, Bob's failed run; queued runs stay queued."""
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])
    ws.root.mkdir(parents=True, exist_ok=True)
    (ws.root / "roles.toml").write_text(ROLES)
    folders = write_class_folders(tmp_path / "pets", ("cat", "dog"), per_class=6, size=32)
    data.import_dataset(folders, "pets", ws=ws, owner=BOB)
    store = RunStore(ws)
    return {"alice": owned_run(store, ALICE, "alice-run"),
            "bob": owned_run(store, BOB, "bob-run", status=FAILED)}


def signed_in(user: str, page: str, **query: str) -> AppTest:
    """The app with a login configured and `user` signed in, switched to `page`."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": user, "name": user.split("@")[0].title()}
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def select(at: AppTest, run_id: str) -> None:
    """Tick the run `run_id` in the runs table (only it)."""
    ids = at.dataframe(key="runs_table").value["id"].to_list()
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index(run_id)], "columns": []}}
    at.run()


@contextlib.contextmanager
def controls_enabled(at: AppTest) -> Iterator[None]:
    """The page drawn with every control enabled, whatever the user's role.

    Streamlit drops input from disabled widgets; each action handler checks the
    role again, so that a control left enabled by mistake still refuses.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(access, "denied", lambda *args, **kwargs: None)
        at.run()
        yield


def forced_click(at: AppTest, key: str) -> None:
    """Click button `key` on the page drawn with every control enabled."""
    with controls_enabled(at):
        at.button(key=key).click().run()


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def test_a_viewer_browses_but_every_change_is_disabled_and_refused(ws, team):
    at = signed_in(DAVE, RUNS)
    select(at, team["alice"])
    viewer = "Viewers can browse, compare, evaluate and predict; to "
    for key in ("runs_rename", "runs_delete", f"runs_notes_save_{team['alice']}"):
        assert at.button(key=key).disabled and viewer in shown(at.button(key=key).help)
    assert at.multiselect(key=f"runs_tags_{team['alice']}").disabled
    assert at.text_area(key=f"runs_note_{team['alice']}").disabled
    assert not at.button(key="runs_clone").disabled  # cloning only opens the Train form
    forced_click(at, "runs_delete")  # sent anyway: the page refuses
    # Deleting someone else's run takes more than the member role.
    assert errors(at) == ["Viewers can browse, compare, evaluate and predict; to delete this "
                          "run, you need the admin role, and you are signed in as "
                          "dave@example.com (viewer). Ask an admin to change your role in "
                          "roles.toml in the workspace."]
    assert "runs_delete_yes" not in [b.key for b in at.button]
    at.switch_page(TRAIN).run()
    launch = at.button(key="train_launch")
    assert launch.disabled and "to launch runs and sweeps, you need the member role" in shown(
        launch.help)
    forced_click(at, "train_launch")
    assert "to launch runs and sweeps, you need the member role" in errors(at)[0]
    assert len(RunStore(ws).list_runs()) == 2
    at.switch_page(DATA).run()
    keys = [b.key for b in at.button]
    assert "data_upload_import" not in keys and "data_folder_import" not in keys
    assert any("to import a dataset, you need the member role" in shown(c.value)
               for c in at.caption)
    assert at.button(key="data_delete").disabled
    at.switch_page(SWEEPS).run()
    assert at.button(key="sweep_start").disabled


def test_a_member_changes_their_own_run_but_not_bobs(ws, team):
    store = RunStore(ws)
    at = signed_in(ALICE, RUNS)
    select(at, team["bob"])
    refusal = ("Only its owner (bob@example.com) or an admin can delete this run; you are "
               "signed in as alice@example.com (member).")
    assert at.button(key="runs_delete").disabled
    assert shown(at.button(key="runs_delete").help) == refusal
    assert at.text_input(key=f"runs_rename_{team['bob']}").disabled
    assert at.multiselect(key=f"runs_tags_{team['bob']}").disabled
    forced_click(at, "runs_delete")
    assert errors(at) == [refusal]
    with controls_enabled(at):
        at.multiselect(key=f"runs_tags_{team['bob']}").set_value(["alice-was-here"]).run()
        at.button(key=f"runs_notes_save_{team['bob']}").click().run()
    assert "Only its owner (bob@example.com) or an admin can edit this run's tags" in errors(at)[0]
    assert store.get_run(team["bob"])["tags"] == []
    # Alice's own run: tags and a note through the page, then rename and delete.
    select(at, team["alice"])
    assert not at.button(key="runs_delete").disabled and not at.button(key="runs_delete").help
    at.multiselect(key=f"runs_tags_{team['alice']}").set_value(["Baseline", "small"])
    at.text_area(key=f"runs_note_{team['alice']}").input("First try on pets.")
    at.run()
    at.button(key=f"runs_notes_save_{team['alice']}").click().run()
    assert not at.exception and not at.error
    run = store.get_run(team["alice"])
    assert (run["tags"], run["note"]) == (["baseline", "small"], "First try on pets.")
    # Drawn again from the store, as stored.
    assert at.multiselect(key=f"runs_tags_{team['alice']}").value == ["baseline", "small"]
    assert at.text_area(key=f"runs_note_{team['alice']}").value == "First try on pets."
    assert at.button(key=f"runs_notes_save_{team['alice']}").disabled  # nothing changed
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_yes").click().run()
    assert [r["id"] for r in store.list_runs()] == [team["bob"]]


def test_a_member_cannot_resume_bobs_run_or_delete_his_dataset(ws, team):
    at = signed_in(ALICE, TRAIN, run=team["bob"])
    resume = at.button(key=f"train_resume_{team['bob']}")
    assert resume.disabled and "Only its owner (bob@example.com)" in shown(resume.help)
    forced_click(at, f"train_resume_{team['bob']}")
    assert any("Only its owner (bob@example.com) or an admin can resume this run" in e
               for e in errors(at))
    assert RunStore(ws).get_run(team["bob"])["status"] == FAILED
    at.switch_page(DATA).run()
    assert at.text_input(key="data_folder_path").disabled  # server paths: admins only
    assert "to use paths on the server" not in shown(at.button(key="data_folder_import").help)
    assert "import from a folder or CSV on the server, you need the admin role" in shown(
        at.button(key="data_folder_import").help)
    assert at.button(key="data_delete").disabled
    forced_click(at, "data_delete")
    assert "Only its owner (bob@example.com) or an admin can delete this dataset" in errors(at)[0]
    assert "data_delete_yes" not in [b.key for b in at.button]


def test_a_member_launch_is_theirs_and_counts_towards_their_limit(ws, team, monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "1")
    at = signed_in(ALICE, TRAIN)
    at.button(key="train_launch").click().run()
    assert not errors(at)
    [queued] = RunStore(ws).list_runs(statuses=(QUEUED,))
    assert queued["owner"] == ALICE
    at.button(key="train_launch").click().run()
    assert errors(at) == ["You have 1 run queued or running, the most one person may have at "
                          "once (TLCORE_MAX_RUNS_PER_USER=1). Wait for one to finish or cancel "
                          "one."]


def test_an_admin_manages_anyones_runs_and_datasets(ws, team):
    at = signed_in(CAROL, RUNS)
    select(at, team["bob"])
    assert not at.button(key="runs_delete").disabled
    assert not at.multiselect(key=f"runs_tags_{team['bob']}").disabled
    at.text_input(key=f"runs_rename_{team['bob']}").input("bob-checked").run()
    at.button(key="runs_rename").click().run()
    assert RunStore(ws).get_run(team["bob"])["name"] == "bob-checked"
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_yes").click().run()
    assert [r["id"] for r in RunStore(ws).list_runs()] == [team["alice"]]
    at.switch_page(DATA).run()
    assert not at.text_input(key="data_folder_path").disabled
    assert not at.button(key="data_delete").disabled
    at.button(key="data_delete").click().run()
    at.button(key="data_delete_yes").click().run()
    assert not data.list_datasets(ws=ws)


def test_owner_and_tags_columns_the_mine_filter_and_search(ws, team):
    store = RunStore(ws)
    store.set_tags(team["bob"], ["lr-sweep"])
    store.set_note(team["alice"], "Augmentation OFF, fast path")
    operator_run = owned_run(store, None, "cli-run")
    at = signed_in(ALICE, RUNS)
    table = at.dataframe(key="runs_table").value
    assert list(table.columns[:4]) == ["run", "owner", "tags", "id"]
    assert table["owner"].to_list() == ["operator", BOB, ALICE]
    assert [list(tags) for tags in table["tags"]] == [[], ["lr-sweep"], []]
    at.toggle(key="runs_mine").set_value(True).run()
    assert at.dataframe(key="runs_table").value["id"].to_list() == [team["alice"]]
    at.toggle(key="runs_mine").set_value(False)
    for text, found in (("LR-SW", [team["bob"]]), ("fast path", [team["alice"]]),
                        ("CLI", [operator_run]), ("-run", [operator_run, team["bob"],
                                                           team["alice"]])):
        at.text_input(key="runs_search").input(text).run()
        assert at.dataframe(key="runs_table").value["id"].to_list() == found, text
    at.text_input(key="runs_search").input("nothing like this").run()
    assert "No runs match these filters." in [i.value for i in at.info]


def test_compare_shows_each_runs_tags_and_note(ws, team):
    store = RunStore(ws)
    store.set_tags(team["alice"], ["baseline"])
    store.set_note(team["bob"], "Ran out of memory at 224 px.")
    at = signed_in(BOB, RUNS)
    at.session_state["runs_table"] = {"selection": {"rows": [0, 1], "columns": []}}
    at.run()
    [notes] = [d.value for d in at.dataframe if "note" in d.value.columns]
    assert notes["run"].to_list() == ["alice-run", "bob-run"]
    assert [list(tags) for tags in notes["tags"]] == [["baseline"], []]
    assert notes["note"].to_list() == ["", "Ran out of memory at 224 px."]
    # One editor, for the run picked among the ticked ones: Bob's own open to him, Alice's
    # read-only.
    notes_run = at.selectbox(key="runs_notes_run")
    assert notes_run.options == ["bob-run", "alice-run"]
    notes_run.set_value(team["bob"]).run()
    assert not at.text_area(key=f"runs_note_{team['bob']}").disabled
    assert f"runs_note_{team['alice']}" not in [t.key for t in at.text_area]
    at.selectbox(key="runs_notes_run").set_value(team["alice"]).run()
    assert at.text_area(key=f"runs_note_{team['alice']}").disabled
    assert len(at.text_area) == 1


def test_without_a_login_there_is_no_mine_toggle_and_the_operator_manages_all(app, team):
    at = app(RUNS)
    assert "runs_mine" not in [t.key for t in at.toggle]
    assert list(at.dataframe(key="runs_table").value.columns[:2]) == ["run", "owner"]
    select(at, team["bob"])
    assert not at.button(key="runs_delete").disabled
    assert not at.text_area(key=f"runs_note_{team['bob']}").disabled


def test_a_sweep_is_resumed_or_cancelled_by_its_owner_or_an_admin(ws, team):
    base = RunConfig.from_dict({"dataset": "pets", "image_size": 32,
                                "base": {"weights": "none"}})
    sweep_id = sweeps.create(ws, base, {"head.pooling": {"choices": ["flatten", "avg"]}}, 2,
                             name="bob-heads", owner=BOB)  # no worker: it shows as stopped
    at = signed_in(ALICE, SWEEPS)
    assert "by bob@example.com" in at.selectbox(key="sweep_chosen").format_func(sweep_id)
    resume = at.button(key=f"sweep_resume_{sweep_id}")
    assert resume.disabled and shown(resume.help) == (
        "Only its owner (bob@example.com) or an admin can resume this sweep; you are signed "
        "in as alice@example.com (member).")
    assert not at.button(key="sweep_start").disabled  # a sweep of her own
    at = signed_in(CAROL, SWEEPS)
    assert not at.button(key=f"sweep_resume_{sweep_id}").disabled


def test_signed_out_the_pages_draw_nothing_of_the_workspace(team):
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()
    for page in (RUNS, TRAIN, DATA, SWEEPS, "app_pages/evaluate.py"):
        at.switch_page(page).run()
        assert not at.exception, page
        assert not at.dataframe, page
        page_keys = ("runs_", "train_", "data_", "sweep_", "eval_", "cfg.")
        assert not [w.key for w in (*at.button, *at.text_input, *at.selectbox)
                    if (w.key or "").startswith(page_keys)], page
