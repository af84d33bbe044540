"""A real OpenID Connect sign-in in headless Chromium, against a local mock provider.

`oidc-provider-mock` serves the provider on a free loopback port; the studio
runs with a temporary secrets file whose `[auth]` section points at it, and a
roles file in its workspace. Three people, bob and carol (members by default)
and alice (admin), sign in through the provider's authorize page in turn; each
sees the studio, who they are in the sidebar, and everyone's runs (in the runs
table and the presenter view, which bob opens by a link before signing in and
lands on after). Bob and carol cannot cancel or delete each other's
runs; alice cancels bob's running run and deletes carol's. Each signs out. The
browser reaches nothing but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.e2e.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Shots,
    _free_port,
    streamlit_server,
)

# The browser tests run one after another, on one test process: each drives a server.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

# sub -> the claims the provider puts in the identity token.
USERS = {
    "bob": {"email": "bob@example.com", "name": "Bob Builder"},
    "carol": {"email": "carol@example.com", "name": "Carol Danvers"},
    "alice": {"email": "alice@example.com", "name": "Alice Liddell"},
}
MEMBERS = ("bob", "carol")
ROLES = '[users]\n"alice@example.com" = "admin"\n'  # everyone else: the default, member
EXPECT_TIMEOUT_MS = 20_000
CPU = {"device": "CPU", "gpus": [], "mixed_precision": False, "backend": "tensorflow",
       "backends": ["tensorflow"]}


@pytest.fixture
def oidc_provider() -> Iterator[str]:
    """The mock provider on 127.0.0.1, alice and bob one click away; yields its URL."""
    import werkzeug.serving
    from oidc_provider_mock import User, app

    provider = app(user_claims=[User(sub=sub, claims=claims) for sub, claims in USERS.items()])
    server = werkzeug.serving.make_server("127.0.0.1", 0, provider, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server(tmp_path, oidc_provider) -> Iterator[tuple[str, Path]]:
    """The studio with a login: secrets pointing at the provider, a roles file; (url, home)."""
    from tlcore.runs import device
    from tlcore.workspace import Workspace

    home = tmp_path / "workspace"
    ws = Workspace.from_env(home)
    (ws.root / "roles.toml").write_text(ROLES)
    # The sidebar's device probe already answered (it imports Keras in a subprocess).
    (ws.cache_dir / device.DEVICE_CACHE_FILE).write_text(json.dumps(CPU))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "studio"\n'
        'client_secret = "not-checked-by-the-mock"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n')
    env = {**os.environ, "TLCORE_HOME": str(home), "TLCORE_MAX_WORKERS": "1",
           "TLCORE_WARM_WORKERS": "0"}
    with streamlit_server(tmp_path, env, port, ("--secrets.files", str(secrets_file))) as url:
        yield url, home


def add_run(home: Path, name: str, owner: str | None) -> str:
    """A completed run owned by `owner`, with two epochs of metrics, written to the store."""
    from tlcore.config import RunConfig
    from tlcore.store import COMPLETED, RunStore
    from tlcore.workspace import Workspace

    store = RunStore(Workspace.from_env(home))
    config = RunConfig.from_dict({"dataset": "shapes", "image_size": 32,
                                  "base": {"weights": "none"}})
    run_id = store.create_run(config, name, owner=owner)
    store.update_run(run_id, status=COMPLETED, best_val_accuracy=0.7, best_epoch=2,
                     started=time.time() - 30, ended=time.time())
    for epoch in (1, 2):
        store.add_epoch(run_id, epoch, 1, {"loss": 1.0 / epoch, "accuracy": 0.5 + 0.1 * epoch,
                                           "val_loss": 1.1 / epoch,
                                           "val_accuracy": 0.45 + 0.1 * epoch})
    return run_id


def running_run(home: Path, name: str, owner: str) -> tuple[str, subprocess.Popen]:
    """A running run owned by `owner`, held by a process that looks like its worker."""
    from tlcore.config import RunConfig
    from tlcore.store import RunStore
    from tlcore.workspace import Workspace

    store = RunStore(Workspace.from_env(home))
    config = RunConfig.from_dict({"dataset": "shapes", "image_size": 32,
                                  "base": {"weights": "none"}})
    run_id = store.create_run(config, name, owner=owner)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                             "tlcore.workers.run", run_id], start_new_session=True)
    now = time.time()
    assert store.claim_next(1, started=now, heartbeat=now, pid=proc.pid) == run_id
    return run_id, proc


def sign_in(page, url: str, sub: str, lands_on: str = "Data") -> None:
    """From a fresh visit of `url`: the studio's sign-in screen, then the provider's authorize
    page, then back on `url`'s page, whose heading is `lands_on`."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_role("heading", name="Transfer-learning studio")).to_be_visible(
        timeout=60_000)
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
    page.get_by_role("button", name="Sign in").click()
    # The mock provider lists its predefined users as one-click buttons.
    page.get_by_role("button", name=sub, exact=True).click()
    expect(page.get_by_role("heading", name=lands_on, exact=True)).to_be_visible(timeout=60_000)


def sign_out(page) -> None:
    """The sidebar's Sign out, then the provider's end-session page, back to the sign-in screen."""
    from playwright.sync_api import expect

    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Data", exact=True)).to_have_count(0)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_two_people_sign_in_in_turn(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    from tlcore.store import RunStore
    from tlcore.workspace import Workspace

    url, home = server
    store = RunStore(Workspace.from_env(home))
    runs = {sub: add_run(home, f"{sub}-run", USERS[sub]["email"]) for sub in USERS}
    training, worker = running_run(home, "bob-training", USERS["bob"]["email"])
    present = f"{url}/present?runs={runs['alice']},{runs['bob']}"
    roles = {"alice": "admin", "bob": "member", "carol": "member"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        # Loopback only: the provider's pages link a stylesheet on a CDN.
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
        page = context.new_page()
        page.set_default_timeout(30_000)
        shots = Shots(page, tmp_path / "screenshots")
        try:
            for sub, claims in USERS.items():
                if sub == "bob":  # a presenter link opened signed out: there after sign-in
                    sign_in(page, present, sub, lands_on="alice-run vs bob-run")
                else:
                    sign_in(page, url, sub)
                sidebar = page.locator('[data-testid="stSidebar"]')
                expect(sidebar).to_contain_text(claims["name"])
                expect(sidebar).to_contain_text(claims["email"])
                expect(sidebar).to_contain_text(f"Role: {roles[sub]}")
                shots(f"signed-in-{sub}")

                if sub == "bob":
                    # Everyone's runs in the presenter view, read-only, the sidebar folded away.
                    # The link, not the start page, on its first slide: both runs compared,
                    # then one slide per run.
                    assert unquote(page.url) == f"{present}&slide=1"
                    expect(page.get_by_role("heading", name="alice-run vs bob-run")
                           ).to_be_visible()
                    for number, other in ((2, "alice"), (3, "bob")):
                        expect(page.get_by_text(f"{number} · {other}-run", exact=True)
                               ).to_be_visible()
                    expect(sidebar).to_have_attribute("data-collapsed", "true")
                    expect(page.locator(".js-plotly-plot")).to_have_count(3)  # curves, metrics
                    main = page.locator('[data-testid="stMain"]')
                    expect(main.locator('[data-testid="stButton"]')).to_have_count(0)
                    expect(main.locator('[data-testid="stForm"]')).to_have_count(0)
                    shots("present-bob")
                    # The folded sidebar holds who is signed in and nothing else.
                    expect(sidebar).to_contain_text(claims["name"])
                    expect(sidebar).not_to_contain_text("Workspace")

                # Everyone's runs in the table; only their owner, or an admin, manages them.
                other = {"bob": "carol", "carol": "bob", "alice": "carol"}[sub]
                page.goto(f"{url}/runs?runs={runs[other]}")
                main = page.locator('[data-testid="stMain"]')
                delete = main.get_by_role("button", name="Delete 1 run(s)…")
                expect(delete).to_be_visible(timeout=60_000)
                table = main.locator('[data-testid="stDataFrame"]')
                for name in ("alice-run", "bob-run", "carol-run", "bob-training"):
                    expect(table).to_contain_text(name)
                if sub in MEMBERS:
                    expect(delete).to_be_disabled()
                    shots(f"refused-{sub}")
                else:  # the admin deletes carol's run
                    delete.click()
                    main.get_by_role("button", name="Yes, delete").click()
                    expect(main).to_contain_text("Deleted carol-run", timeout=30_000)
                    assert [r["name"] for r in store.list_runs()
                            if r["owner"] == USERS["carol"]["email"]] == []

                # Bob's running run: he may cancel it, carol may not, the admin does.
                page.goto(f"{url}/train?run={training}")
                cancel = main.get_by_role("button", name="Cancel run")
                expect(cancel).to_be_visible(timeout=60_000)
                if sub == "bob":
                    expect(cancel).to_be_enabled()
                elif sub == "carol":
                    expect(cancel).to_be_disabled()
                else:
                    cancel.click()
                    deadline = time.monotonic() + 30
                    while not store.get_run(training)["cancel_requested"]:
                        assert time.monotonic() < deadline, "the admin's cancel was not recorded"
                        time.sleep(0.2)

                page.goto(url)
                expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible(
                    timeout=60_000)
                sign_out(page)
                shots(f"signed-out-{sub}")
        except Exception:
            shots("failure")
            raise
        finally:
            browser.close()
            worker.kill()
            worker.wait()
