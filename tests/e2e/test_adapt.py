"""The Adapt page in a real headless Chromium: a run adapted to a shifted domain.

Serves a copy of the adaptation lab's workspace (`tests/support/adaptlab.py`: a
completed source run on "colours" and an "inverted" target whose labels only
score) with `streamlit run app.py`, as `test_browser.py` does.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.e2e.test_browser import CHROMIUM
from tests.e2e.test_data_studio import _pick, studio_page

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]
ADAPT_TIMEOUT_MS = 180_000


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_adapt_a_run_to_a_shifted_domain_and_read_its_chart(lab_home, tmp_path):
    from playwright.sync_api import expect

    from tlcore.adapt import adapted
    from tlcore.workspace import Workspace

    source_home, run_id = lab_home
    home = tmp_path / "workspace"
    shutil.copytree(source_home, home)  # this test's own copy: adapting adds a run
    before = {r["run_id"] for r in adapted.adapted_runs(Workspace.from_env(home))}
    with studio_page(tmp_path, home, "/adapt") as (page, shots):
        expect(page.get_by_role("heading", name="Adapt", exact=True)).to_be_visible(
            timeout=60_000)
        expect(page.locator(".st-key-adapt_start button")).to_be_enabled()
        page.wait_for_timeout(800)  # the page's first run has settled
        _pick(page, "adapt_target", "inverted (labels hidden, used to score)")
        page.locator(".st-key-adapt_start button").click()
        # The adaptation runs in its own process; the report replaces the progress bar.
        expect(page.get_by_text("Chosen without target labels")).to_be_visible(
            timeout=ADAPT_TIMEOUT_MS)
        expect(page.get_by_role("heading", name="Shift")).to_be_visible()
        chart = page.locator(".st-key-adapt_methods_chart .js-plotly-plot")
        expect(chart).to_be_visible()
        shots("adapt-report")
        # Hovering a bar of the chart names its method and value.
        bar = chart.locator(".point").first
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        # Plotly's drag layer lies over the bars: point at the bar, as a person does.
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(chart.locator(".hoverlayer")).to_contain_text(re.compile(r"\d"))
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        shots("adapt-hover")
    new = [r for r in adapted.adapted_runs(Workspace.from_env(home))
           if r["run_id"] not in before]
    assert len(new) == 1 and new[0]["source_run"] == run_id and new[0]["target"] == "inverted"
