"""The data studio in a real headless Chromium: create a dataset, add images by upload, versions.

Starts `streamlit run app.py` as `test_browser.py` does (its `streamlit_server`)
with a temporary workspace, and drives it with Playwright (Debian's `chromium`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    Shots,
    streamlit_server,
)
from tlcore.data.demo import synth_image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"cat{i}.png"
        synth_image(i % 4, 40, np.random.default_rng(i)).save(path)
        paths.append(path)
    return paths


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_create_a_dataset_and_grow_a_class_by_upload(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from tlcore import data
    from tlcore.workspace import Workspace

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    home = tmp_path / "workspace"
    env = {**os.environ, "TLCORE_HOME": str(home), "TLCORE_MAX_WORKERS": "1",
           "TLCORE_WARM_WORKERS": "0"}
    files = _images(tmp_path / "cats", 3)
    with streamlit_server(tmp_path, env) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(30_000)
        shots = Shots(page, tmp_path / "screenshots")
        try:
            page.goto(url)
            expect(page.get_by_text("No datasets yet")).to_be_visible(timeout=60_000)
            page.get_by_role("tab", name="New empty dataset").click()
            page.locator(".st-key-data_new_name input").fill("studio")
            classes = page.locator(".st-key-data_new_classes input")
            classes.fill("cat, dog")
            classes.press("Enter")
            page.get_by_role("button", name="Create dataset").click()
            expect(page.get_by_text("Created studio with 2 classes")).to_be_visible()
            expect(page.get_by_role("combobox", name="Class")).to_have_value("cat")
            expect(page.get_by_text("cat: 0 images")).to_be_visible()
            shots("studio-created")

            page.locator('.st-key-data_edit_upload_0 input[type="file"]').set_input_files(files)
            expect(page.get_by_text("cat2.png")).to_be_visible()
            page.get_by_role("button", name="Add 3 images").click()
            expect(page.get_by_text("Added 3 images to cat")).to_be_visible()
            expect(page.get_by_text("cat: 3 images")).to_be_visible()
            expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("3")
            shots("studio-added")

            page.get_by_role("tab", name="Versions").click()
            versions = page.locator('[data-testid="stTable"]', has_text="Changes")
            expect(versions).to_contain_text("added 3 to 'cat'")
            expect(versions).to_contain_text("created empty")
            shots("studio-versions")
        except BaseException:
            shots("failure")
            raise
        finally:
            browser.close()
    history = data.list_versions("studio", Workspace.from_env(home))
    assert [v["summary"] for v in history] == ["created empty", "added 3 to 'cat'"]
