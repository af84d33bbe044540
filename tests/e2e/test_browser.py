"""The whole loop in a real headless Chromium: upload, configure, train, watch, cancel, compare,
evaluate; and deep links into a freshly started server.

Starts `streamlit run app.py` on a free localhost port with a temporary
workspace and drives it with Playwright (Debian's `chromium`, never a
downloaded browser). With `$TLCORE_SCREENSHOTS` set, a screenshot of each step
lands there and in the test's temp folder; a failing test always leaves its
last screen in its temp folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tlcore.data.demo import write_class_folders
from tlcore.ui import studio

# The browser tests run one after another, on one test process: each drives a server.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium",
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TRAIN_TIMEOUT_MS = 150_000
EVAL_TIMEOUT_MS = 150_000
SWEEP_TIMEOUT_MS = 150_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Wait (60 s at most) until the Streamlit server at `url` answers its health check."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.read() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("streamlit did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.3)


@contextmanager
def streamlit_server(tmp_path: Path, env: dict[str, str], port: int | None = None,
                     options: tuple[str, ...] = ()) -> Iterator[str]:
    """`app.py` served on 127.0.0.1 with `env` until the block ends; yields its URL.

    Args:
        tmp_path: Where its log goes (`streamlit.log`, shown when it fails to start).
        env: The server's environment.
        port: Its port; default a free one.
        options: More `streamlit run` options.
    """
    port = port or _free_port()
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(studio.APP), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
             *options],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, log_path)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path):
    """The app on a free port with its own workspace; yields (url, workspace path)."""
    home = tmp_path / "workspace"
    # The dashboard keeps a warm worker and its inference service, as it does for a user.
    env = {**os.environ, "TLCORE_HOME": str(home), "TLCORE_MAX_WORKERS": "1",
           "TLCORE_WARM_WORKERS": "1", "TLCORE_INFER_SERVICE": "1"}
    try:
        with streamlit_server(tmp_path, env) as url:
            yield url, home
    finally:
        _stop_workers(home)


def _stop_workers(home: Path) -> None:
    """Workers are detached; end any the test left running."""
    from tlcore.runs import inference, launch, sweeps, warm
    from tlcore.store import ACTIVE_STATUSES, RunStore
    from tlcore.workspace import Workspace

    ws = Workspace.from_env(home)
    for sweep in sweeps.list_sweeps(ws):
        sweeps.cancel(ws, sweep["id"])
        for pid in sweeps.sweep_workers(sweep["id"]):
            os.kill(pid, signal.SIGKILL)
    for run in RunStore(ws).list_runs(statuses=ACTIVE_STATUSES):
        launch.delete(run["id"], ws=ws)
    warm.stop_warm(ws)
    assert warm.warm_workers(ws) == {}
    inference.stop_service(ws)


def _run_ids(home: Path) -> dict[str, str]:
    """Run name -> id in the test's workspace."""
    from tlcore.store import RunStore
    from tlcore.workspace import Workspace

    return {r["name"]: r["id"] for r in RunStore(Workspace.from_env(home)).list_runs()}


def _evaluated(home: Path, run_id: str) -> bool:
    """Whether the run has a stored evaluation on its own dataset (read without TensorFlow)."""
    from tlcore.results.evaluate import list_evaluations
    from tlcore.workspace import Workspace

    return "shapes" in list_evaluations(run_id, ws=Workspace.from_env(home))


def _app_nav(page):
    """The app's own st.navigation menu (Streamlit's automatic app_pages/ menu has no such link)."""
    return page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Runs & compare")


def _run_picker(page):
    """The Evaluate page's run selectbox (its input holds the chosen run's label)."""
    return page.locator(".st-key-eval_run").get_by_role("combobox")


def _class_zip(tmp_path: Path) -> Path:
    root = write_class_folders(tmp_path / "shapes", ("disc", "square", "triangle"),
                               per_class=12, size=40)
    path = tmp_path / "shapes.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for image in sorted(root.rglob("*.png")):
            zf.write(image, Path("shapes", image.relative_to(root)).as_posix())
    return path


# Assertions wait this long: the app shares 2 cores with training workers.
EXPECT_TIMEOUT_MS = 20_000


class Shots:
    """Full-page screenshots, numbered in the order taken.

    Only with `$TLCORE_SCREENSHOTS` set, and on failure: each one costs the test
    about a second on a busy machine.
    """

    def __init__(self, page, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)
        self.extra = os.environ.get("TLCORE_SCREENSHOTS")

    def __call__(self, name: str) -> None:
        self.n += 1
        if not self.extra and name != "failure":
            return
        path = self.folder / f"{self.n:02d}-{name}.png"
        self.page.wait_for_timeout(600)  # let charts finish their transition
        self.page.screenshot(path=path, full_page=True)
        if self.extra:
            Path(self.extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(self.extra) / path.name)


def _settled(page) -> None:
    """Wait until the rerun an input started has finished (Streamlit's running icon gone).

    The next input then meets the page that rerun drew, as a person's would: inputs
    sent while the server still runs the page race its reruns and the sidebar's
    refresh, and an input can be lost.
    """
    from playwright.sync_api import expect

    page.wait_for_timeout(250)  # the rerun has started
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=60_000)


def _commit(locator, value: str) -> None:
    """Type into a Streamlit input, commit it (Streamlit applies on Enter), wait for the rerun."""
    locator.fill(value)
    locator.press("Enter")
    _settled(locator.page)


def _choose(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]', has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    _settled(page)


def _launch(page, name: str, epochs: int, learning_rate: str | None = None) -> None:
    page.get_by_role("tab", name="Optimizer").click()
    _commit(page.get_by_role("spinbutton", name="Epochs", exact=True), str(epochs))
    if learning_rate:
        _commit(page.get_by_role("spinbutton", name="Learning rate", exact=True), learning_rate)
    _commit(page.get_by_role("textbox", name="Run name (optional)"), name)
    page.get_by_role("button", name="Launch run").click()
    page.get_by_role("heading", name=name).wait_for(timeout=30_000)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_upload_train_watch_cancel_compare(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    url, home = server
    zip_path = _class_zip(tmp_path)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(30_000)
        shots = Shots(page, tmp_path / "screenshots")
        try:
            # Data: empty state, then upload a zip of class folders.
            page.goto(url)
            expect(page.get_by_text("No datasets yet")).to_be_visible(timeout=60_000)
            shots("data-empty")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                zip_path)
            expect(page.get_by_text("shapes.zip")).to_be_visible()
            page.get_by_role("button", name="Import zip").click()
            expect(page.get_by_text("Imported shapes: 36 images in 3 classes")).to_be_visible()
            expect(page.locator(".js-plotly-plot")).to_have_count(1)
            shots("data-imported")

            # Train: tiny config, launch, watch the live panel until it completes.
            page.get_by_role("link", name="Train").click()
            page.get_by_role("spinbutton", name="Image size (px)").wait_for()
            _settled(page)  # the page's first run has drawn the whole form
            _commit(page.get_by_role("spinbutton", name="Image size (px)"), "32")
            # Frozen random features: a head-only run, the quickest to train on a CPU.
            _choose(page, "Pretrained weights",
                    "Random frozen features (not a from-scratch baseline)")
            _launch(page, "e2e-first", epochs=2)
            expect(page.get_by_text("Best val accuracy")).to_be_visible(
                timeout=TRAIN_TIMEOUT_MS)
            expect(page.locator(".js-plotly-plot")).to_have_count(2)
            shots("train-completed")

            # A second run with another learning rate.
            _launch(page, "e2e-second", epochs=1, learning_rate="0.01")
            expect(page.get_by_text("Best val accuracy")).to_be_visible(
                timeout=TRAIN_TIMEOUT_MS)

            # A third one, cancelled while it trains. Flips make every epoch go through the
            # whole network (a head epoch on cached features takes milliseconds).
            page.get_by_role("tab", name="Augmentation").click()
            _choose(page, "Flip", "horizontal")
            _launch(page, "e2e-cancel", epochs=200)
            # The panel and the line beside Launch both show the running epoch.
            expect(page.get_by_text("Phase 1 · epoch").first).to_be_visible(
                timeout=TRAIN_TIMEOUT_MS)
            shots("train-running")
            page.get_by_role("button", name="Cancel run").click()
            expect(page.get_by_text("Cancelled. Resume continues")).to_be_visible(
                timeout=60_000)
            shots("train-cancelled")

            # Runs & compare: tick the two completed runs in the table.
            page.get_by_role("link", name="Runs & compare").click()
            grid = page.locator('[data-testid="stDataFrame"]')
            # The Train page's tables linger until the new page has replaced them.
            expect(grid).to_have_count(1)
            expect(page.get_by_text("Tick the boxes")).to_be_visible()
            page.wait_for_timeout(800)
            box = grid.bounding_box()
            for row in (1, 2):  # newest first: e2e-cancel, e2e-second, e2e-first
                # The row-selection checkboxes sit in the first column of the canvas grid.
                page.mouse.click(box["x"] + 18, box["y"] + 35 + 35 * row + 17)
                page.wait_for_timeout(400)
            expect(page.get_by_role("heading", name="Compare", exact=True)).to_be_visible()
            ids = _run_ids(home)
            pair = [ids["e2e-first"], ids["e2e-second"]]
            # Workers that evaluate at the end of training leave an evaluation behind: then the
            # confusion matrices and the F1 deltas join the three comparison charts.
            both_evaluated = all(_evaluated(home, i) for i in pair)
            expect(page.locator(".js-plotly-plot")).to_have_count(6 if both_evaluated else 3)
            expect(page.get_by_text("Config differences")).to_be_visible()
            page.get_by_text("Hyperparameters vs best val accuracy").wait_for()
            if not both_evaluated:
                expect(page.get_by_text("on the Evaluate page to compare confusion matrices")
                       ).to_be_visible()
            shots("runs-compare")
            if both_evaluated:
                page.locator(".st-key-runs_confusion_a").scroll_into_view_if_needed()
                expect(page.locator(".st-key-runs_f1_delta .js-plotly-plot")).to_be_visible()
                shots("runs-compare-evaluations")

            # Evaluate: a deep link to the first run; metric cards and its confusion matrix.
            page.goto(f"{url}/evaluate?run={pair[0]}")
            expect(page.get_by_role("heading", name="Evaluate", exact=True)).to_be_visible()
            expect(_app_nav(page)).to_be_visible()
            expect(_run_picker(page)).to_have_value(re.compile(r"^e2e-first · "))
            cards = page.locator('[data-testid="stMetric"]')
            if not _evaluated(home, pair[0]):
                expect(page.get_by_text("Not evaluated on this dataset yet").first).to_be_visible()
                page.locator(".st-key-eval_evaluate button").click()
                # The evaluation runs in a CLI subprocess under a spinner, then the page reruns.
                expect(page.get_by_text("Evaluated on shapes.")).to_be_visible(
                    timeout=EVAL_TIMEOUT_MS)
                expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0)
            expect(cards).to_have_count(5)
            for label in ("Accuracy", "Top-3 accuracy", "Macro F1", "Macro ROC AUC", "Images"):
                expect(cards.filter(has_text=label).first).to_be_visible()
            # The matrix is keyed per run and dataset: eval_confusion_<run id>_<dataset>.
            confusion = page.locator("[class*='st-key-eval_confusion_']")
            expect(confusion.locator(".js-plotly-plot")).to_be_visible()
            expect(confusion).to_contain_text("Confusion matrix")
            expect(page.get_by_role("button", name="Re-evaluate")).to_be_visible()
            shots("evaluate")
            # Clicking a cell (here the first class's diagonal) shows its images; the browser
            # sends the selection's customdata as an object, which once crashed the page.
            cell = confusion.locator(".scatterlayer .point").first
            cell.scroll_into_view_if_needed()
            box = cell.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            expect(page.get_by_text(re.compile(r" of (\S+) predicted as \1$"))).to_be_visible()
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            shots("evaluate-cell")

            # Predict: an upload is classified by the dashboard's inference service.
            page.get_by_role("tab", name="Predict").click()
            picture = next(p for p in (home / "datasets" / "shapes" / "images").rglob("*")
                           if p.is_file())
            page.locator('.st-key-eval_upload input[type="file"]').set_input_files(str(picture))
            page.locator(".st-key-eval_predict button").click()
            expect(page.get_by_text("Grad-CAM", exact=True)).to_be_visible(
                timeout=EVAL_TIMEOUT_MS)
            expect(page.locator(".st-key-eval_predict_chart_0 .js-plotly-plot")).to_be_visible()
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            assert (home / "workers" / "infer.json").exists()  # answered by the service
            shots("evaluate-predict")

            # Sweeps: three trials around the first run; the leaderboard and charts fill in.
            page.get_by_role("link", name="Sweeps").click()
            expect(page.get_by_role("heading", name="Sweeps", exact=True)).to_be_visible()
            _choose(page, "Start from", "Run: e2e-first")
            _commit(page.get_by_role("spinbutton", name="Trials"), "3")
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Start sweep").click()
            expect(page.get_by_text("started with 1 worker(s)")).to_be_visible()
            # The fragment's latest drawing (a redraw briefly shows the previous one too).
            trials = page.locator('[data-testid="stMetric"]', has_text="Trials").last
            expect(trials).to_contain_text("3 / 3", timeout=SWEEP_TIMEOUT_MS)
            expect(page.get_by_text("Leaderboard", exact=True)).to_be_visible()
            best = page.locator("[class*='st-key-sweep_best_'] .js-plotly-plot")
            expect(best.last).to_be_visible()  # the fragment's latest drawing
            shots("sweeps")
        except Exception:
            shots("failure")
            raise
        finally:
            browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_deep_links_on_a_fresh_server(server, tmp_path):
    """/evaluate?run=ID and /train?run=ID as the very first requests land on their pages."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    from tests.support.evalutil import make_run, run_config
    from tlcore.workspace import Workspace

    url, home = server
    run_id = make_run(Workspace.from_env(home), run_config("shapes"), name="deep-linked",
                      val_accuracy=[0.5, 0.7], test_accuracy=0.6)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        shots = Shots(None, tmp_path / "screenshots")
        try:
            for path, heading in ((f"/evaluate?run={run_id}", "Evaluate"),
                                  (f"/train?run={run_id}", "Train")):
                # A new context each time: a fresh browser session with no cookies or state.
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(30_000)
                shots.page = page
                page.goto(url + path)
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(
                    timeout=60_000)
                page.wait_for_timeout(1500)  # the legacy menu, if any, is drawn by now
                shots(f"deep-link-{heading.lower()}")
                expect(_app_nav(page)).to_be_visible(timeout=5_000)
                expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Workspace")
                if heading == "Evaluate":
                    expect(_run_picker(page)).to_have_value(re.compile(r"^deep-linked · "))
                else:
                    expect(page.get_by_role("heading", name="deep-linked")).to_be_visible()
                page.context.close()
        finally:
            browser.close()
