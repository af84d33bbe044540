"""Login: the sign-in gate, who is signed in, trusted proxy headers, and the presenter view.

`at.secrets["auth"]` turns Streamlit's OpenID Connect login on and `at.user` is
what `st.user` holds; `server.trustedUserHeaders` turns the proxy's login on.
The sidebar is checked on an app's first run (see tests/pages/test_app.py).
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from tests.pages.test_evaluate_page import stored_evaluation
from tests.support.evalutil import make_dataset, run_config
from tests.support.evalutil import make_run as add_eval_run
from tests.support.markup import shown
from tlcore.errors import ConfigError
from tlcore.store import RunStore
from tlcore.ui import studio
from tlcore.ui.present import presenter_link
from tlcore.ui.signin import NO_PROXY_USER, providers
from tlcore.ui.text import plain

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s3cret",
        "client_id": "studio", "client_secret": "x",
        "server_metadata_url": "https://id.example.com/.well-known/openid-configuration"}
ALICE = {"is_logged_in": True, "email": "Alice@Example.com", "name": "Alice Liddell",
         "sub": "alice"}


def _app(user: dict | None = None, auth: dict | None = AUTH, page: str | None = None,
         runs: str | None = None) -> AppTest:
    """`app.py` with a login configured (OpenID Connect unless `auth` is None), run once."""
    at = AppTest.from_file(str(studio.APP), default_timeout=60)
    if auth is not None:
        at.secrets["auth"] = auth
    if user is not None:
        at.user = user
    at.run()
    if runs is not None:
        at.query_params["runs"] = runs
    if page:
        at.switch_page(page).run()
    return at


def _texts(at, where=None) -> str:
    where = where or at
    parts = [e.value for kind in ("title", "header", "markdown", "caption", "info", "warning",
                                  "error") for e in getattr(where, kind)]
    return "\n".join(shown(str(p)) for p in parts)


def _assert_signed_out(at) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Transfer-learning studio"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert "sign in to see its datasets and runs" in _texts(at)
    # No page ran, and the sidebar (workspace, queue) was never drawn.
    assert not at.info and not at.metric and not at.sidebar.code and not at.sidebar.caption


@pytest.mark.parametrize("page", [None, "app_pages/runs.py", "app_pages/train.py",
                                  "app_pages/present.py"])
def test_signed_out_every_page_shows_only_the_sign_in_screen(populated, page):
    at = _app({"is_logged_in": False}, page=page, runs=",".join(populated.values()))
    _assert_signed_out(at)


def test_one_sign_in_button_per_named_provider():
    shared = {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    at = _app({"is_logged_in": False}, auth={**shared, "google": provider, "okta": provider})
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with Google", "Sign in with Okta"]
    assert providers(AUTH) == [None]
    assert providers({**AUTH, "okta": provider}) == [None, "okta"]


def test_signed_in_sees_the_page_and_who_they_are_in_the_sidebar(ws, populated):
    (ws.root / "roles.toml").write_text('default = "viewer"\n\n[users]\n'
                                        '"alice@example.com" = "admin"\n')
    at = _app(ALICE)
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    sidebar = _texts(at, at.sidebar)
    assert "Alice Liddell" in sidebar and "alice@example.com" in sidebar
    assert "Role: admin" in sidebar
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    assert str(ws.root) in [c.value for c in at.sidebar.code]  # the usual sidebar follows

    # Someone the roles file does not list gets its default role.
    at = _app({"is_logged_in": True, "email": "bob@example.com", "name": "Bob"})
    assert "Role: viewer" in _texts(at, at.sidebar)

    # Signing out: the browser comes back in a new session, signed out.
    at = _app(ALICE)
    at.sidebar.button(key="app_sign_out").click().run()
    assert at.user == {"is_logged_in": False}
    _assert_signed_out(_app(at.user))


def test_a_malformed_roles_file_lets_nobody_in(ws):
    (ws.root / "roles.toml").write_text('default = "owner"\n')
    at = _app(ALICE)
    assert not at.exception
    (error,) = [shown(e.value) for e in at.error]
    assert error.startswith(f"The roles file {ws.root / 'roles.toml'}: default must be one of")
    assert not at.title and not at.sidebar.code


@pytest.mark.usefixtures("trusted_headers")
def test_behind_a_proxy_without_a_user_header_the_page_says_so():
    at = _app({}, auth=None)
    assert not at.exception
    assert [shown(e.value) for e in at.error] == [shown(NO_PROXY_USER)]
    assert not at.title and not at.button and not at.sidebar.code


@pytest.mark.usefixtures("trusted_headers")
def test_behind_a_proxy_the_header_signs_in_without_a_sign_out(ws, server_address):
    server_address("0.0.0.0")  # shared on the network, but the proxy checks who comes in
    at = _app({"email": "carol@example.com"}, auth=None)
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    sidebar = _texts(at, at.sidebar)
    assert "carol@example.com" in sidebar and "Role: member" in sidebar
    assert not at.sidebar.button and not at.sidebar.warning


@pytest.mark.usefixtures("trusted_headers")
def test_a_sign_in_together_with_trusted_headers_lets_nobody_in(ws, populated):
    (ws.root / "roles.toml").write_text('[users]\n"alice@example.com" = "admin"\n')
    # Streamlit puts the header's email over the token's: a viewer would become alice.
    at = _app({**ALICE, "email": "alice@example.com", "sub": "mallory"})
    assert not at.exception
    (error,) = [shown(e.value) for e in at.error]
    assert error.startswith("Both a sign-in ([auth] in .streamlit/secrets.toml) and trusted")
    assert "Keep one of them" in error and "\n" not in error
    assert not at.title and not at.sidebar.code


@pytest.mark.parametrize("verified", [False, "false"])
def test_an_unverified_email_is_not_who_someone_is(ws, populated, verified):
    (ws.root / "roles.toml").write_text('default = "viewer"\n\n[users]\n'
                                        '"alice@example.com" = "admin"\n')
    at = _app({"is_logged_in": True, "email": "Alice@Example.com ", "email_verified": verified,
               "name": "Not Alice", "sub": "user-4711"})
    assert not at.exception, at.exception
    sidebar = _texts(at, at.sidebar)
    assert "user-4711" in sidebar and "Role: viewer" in sidebar
    assert "alice@example.com" not in sidebar
    # The same address, verified, is alice.
    at = _app({**ALICE, "email_verified": True})
    assert "Role: admin" in _texts(at, at.sidebar)


@pytest.fixture
def presented(ws, populated):
    """The two completed runs of `populated`, each with a stored evaluation on "shapes"."""
    make_dataset(ws, "shapes")
    ids = [add_eval_run(ws, run_config("shapes", weights), name=name,
                        val_accuracy=[0.5, 0.7, acc], test_accuracy=acc - 0.05)
           for name, weights, acc in (("pretrained", "imagenet", 0.9),
                                      ("scratch", "none", 0.6))]
    evaluations = [stored_evaluation(ws, run_id) for run_id in ids]
    return ids, evaluations


def _slides(at) -> list[str]:
    """The presenter view's slide titles, as its one control lists them."""
    (picker,) = at.get("button_group")
    return [shown(option) for option in picker.options]


def _assert_read_only(at) -> None:
    """Nothing to click, type or pick but the slide picker (and a link back to the Runs page)."""
    for kind in ("button", "text_input", "selectbox", "multiselect", "radio", "checkbox",
                 "toggle", "number_input", "text_area", "slider"):
        assert not getattr(at, kind), kind
    assert [b.key for b in at.get("button_group")] == ["present_slide"]
    assert not at.get("form")


def test_presenter_view_shows_the_runs_read_only(app, ws, presented):
    (first, second), (ev, _) = presented
    store = RunStore(ws)
    store.set_tags(first, ["baseline", "demo"])
    store.set_note(first, "Best so far.\n**Not** a heading: # kept as typed")
    at = app()
    at.query_params["runs"] = f"{first},{second}"
    at.switch_page("app_pages/present.py").run()
    assert not at.exception, at.exception
    # One slide on screen at a time: the comparison, then one per run; the slide is in the URL.
    assert _slides(at) == ["1 · Comparison", "2 · pretrained", "3 · scratch"]
    assert at.query_params["slide"] == "1"
    assert at.title[0].value == "pretrained vs scratch"
    assert not at.header
    # Curves (accuracy, loss), final metrics; the config differences.
    assert len(at.get("plotly_chart")) == 3
    assert len(at.table) == 1  # config differences
    # Back to the Runs page with these runs ticked.
    (back,) = at.get("page_link")
    assert back.proto.label == "Runs & compare"
    assert parse_qs(back.proto.query_string) == {"runs": [f"{first},{second}"]}
    _assert_read_only(at)

    at.button_group(key="present_slide").set_value(1).run()
    assert not at.exception, at.exception
    assert at.query_params["slide"] == "2"
    assert [h.value for h in at.header] == ["pretrained"]
    texts = [shown(m.value) for m in at.markdown]
    assert ":gray-badge[baseline] :gray-badge[demo]" in texts
    (note,) = [m.value for m in at.markdown if shown(m.value).startswith("> Best so far.")]
    assert shown(note) == "> Best so far.\n> **Not** a heading: # kept as typed"
    assert plain("**Not**") in note  # the note's Markdown shows as typed
    # A confusion matrix and per-class bars.
    assert len(at.get("plotly_chart")) == 2
    metrics = {m.label: m.value for m in at.metric[:5]}
    assert metrics["Accuracy"] == f"{ev['splits']['test']['accuracy'] * 100:.1f}%"
    assert "Grad-CAM of the most confident mistakes" in _texts(at)
    images = at.get("image")
    assert len(images) == 1  # the run's one stored overlay
    mistake = ev["splits"]["test"]["mistakes"][0]
    assert shown(images[0].captions[0]).startswith(f"{mistake['true']} → {mistake['predicted']}")
    _assert_read_only(at)

    # A link names its slide: a reload or a shared link opens that one.
    at.query_params["slide"] = "3"
    at.run()
    assert [h.value for h in at.header] == ["scratch"]
    assert not [t for t in (shown(m.value) for m in at.markdown)
                if t.startswith(":gray-badge[")]  # this run has no tags
    assert len(at.get("image")) == 1


def test_presenter_view_names_unknown_runs_and_says_how_to_make_a_link(app, presented):
    (first, _), _ = presented
    at = app()
    at.query_params["runs"] = f"{first},zzzzzz9,../etc"
    at.switch_page("app_pages/present.py").run()
    assert not at.exception, at.exception
    (warning,) = [shown(w.value) for w in at.warning]
    assert warning.startswith("The link names runs not in this workspace: zzzzzz9, ../etc.")
    assert _slides(at) == ["1 · Learning curves", "2 · pretrained"]

    at.query_params.clear()
    at.switch_page("app_pages/present.py").run()
    assert not at.exception
    assert "open their presenter link" in _texts(at) and "?runs=<run id>,<run id>" in _texts(at)


def test_presenter_view_for_a_signed_in_viewer(ws, presented):
    (ws.root / "roles.toml").write_text('default = "viewer"\n')
    ids, _ = presented
    at = _app({**ALICE}, page="app_pages/present.py", runs=",".join(ids))
    assert not at.exception, at.exception
    assert _slides(at) == ["1 · Comparison", "2 · pretrained", "3 · scratch"]


def test_presenter_link():
    assert presenter_link(["abc123", "def456", "abc123"]) == "/present?runs=abc123,def456"
    before = streamlit_config.get_option("server.baseUrlPath")
    streamlit_config.set_option("server.baseUrlPath", "/studio/")
    try:
        assert presenter_link(["abc123"]) == "/studio/present?runs=abc123"
    finally:
        streamlit_config.set_option("server.baseUrlPath", before)
    with pytest.raises(ConfigError, match="at least one run"):
        presenter_link([])
    with pytest.raises(ConfigError, match="Received: run_id='../x'"):
        presenter_link(["../x"])
