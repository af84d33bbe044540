"""The data studio in a real headless Chromium: a dataset grown by upload and by camera, versions.

Starts `streamlit run app.py` as `test_browser.py` does (its `streamlit_server`)
with a temporary workspace, and drives it with Playwright (Debian's `chromium`).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
from tlcore.runs import device
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@functools.cache
def probed_device() -> str:
    """The device probe's answer on this machine, from one real probe per test process."""
    with tempfile.TemporaryDirectory(prefix="tlcore-probe-") as tmp:
        ws = Workspace.from_env(Path(tmp))
        info = device.device_info(ws)
        assert "error" not in info, info["error"]
        return (ws.cache_dir / device.DEVICE_CACHE_FILE).read_text()


@contextmanager
def studio_page(tmp_path: Path, home: Path, url_path: str = "",
                chromium_args: tuple[str, ...] = ()) -> Iterator[tuple[Any, Shots]]:
    """The app on workspace `home` in headless Chromium, opened at `url_path`.

    Yields the page and its `Shots`; a failure inside the block is photographed.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    # The server finds the device probed, as a server does after its first probe: the
    # probe has tests of its own, and each probe imports TensorFlow in a process of its own.
    cache = Workspace.from_env(home).cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    (cache / device.DEVICE_CACHE_FILE).write_text(probed_device())
    env = {**os.environ, "TLCORE_HOME": str(home), "TLCORE_MAX_WORKERS": "1",
           "TLCORE_WARM_WORKERS": "0"}
    with streamlit_server(tmp_path, env) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=CHROMIUM_ARGS + list(chromium_args))
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(30_000)
        shots = Shots(page, tmp_path / "screenshots")
        try:
            page.goto(url + url_path)
            yield page, shots
        except BaseException:
            shots("failure")
            raise
        finally:
            browser.close()


def _pick(page, key: str, option: str) -> None:
    """Choose `option` in the selectbox with widget key `key`.

    A rerun that redraws the box as it opens closes its list: then open it again.
    """
    for _ in range(3):
        page.locator(f".st-key-{key} [data-testid='stSelectbox']").click()
        choice = page.get_by_role("option", name=option, exact=True)
        try:
            choice.wait_for(timeout=5_000)
        except Exception:  # noqa: BLE001 (Playwright's timeout: the list closed again)
            continue
        choice.click()
        return
    raise AssertionError(f"the {key} selectbox did not open its list")


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
    from playwright.sync_api import expect

    from tlcore import data
    from tlcore.workspace import Workspace

    home = tmp_path / "workspace"
    files = _images(tmp_path / "cats", 3)
    with studio_page(tmp_path, home) as (page, shots):
        expect(page.get_by_text("No datasets yet")).to_be_visible(timeout=60_000)
        page.get_by_role("tab", name="New empty dataset").click()
        page.locator(".st-key-data_new_name input").fill("studio")
        classes = page.locator(".st-key-data_new_classes input")
        classes.fill("cat, dog")
        classes.press("Enter")
        page.get_by_role("button", name="Create dataset").click()
        expect(page.get_by_text("Created studio with 2 classes")).to_be_visible()
        expect(page.get_by_role("radio", name="cat", exact=True)).to_be_checked()
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
    history = data.list_versions("studio", Workspace.from_env(home))
    assert [v["summary"] for v in history] == ["created empty", "added 3 to 'cat'"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_hold_to_record_adds_a_burst_of_camera_frames(tmp_path):
    from playwright.sync_api import expect

    from tlcore import data
    from tlcore.workspace import Workspace

    home = tmp_path / "workspace"
    data.create_dataset("webcam", ["cat", "dog"], ws=Workspace.from_env(home))
    # Chromium's own test camera (a moving pattern), its permission granted without asking.
    camera = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    with studio_page(tmp_path, home, chromium_args=camera) as (page, shots):
        expect(page.get_by_text("cat: 0 images")).to_be_visible(timeout=60_000)
        page.get_by_role("tab", name="Camera").click()
        record = page.get_by_role("button", name="Hold to record")
        expect(record).to_be_enabled()  # the camera is on
        expect(page.get_by_text("Hold the button to record 8 frames a second")).to_be_visible()
        page.get_by_role("radio", name="dog", exact=True).click()  # the class: one click
        expect(page.get_by_role("radio", name="dog", exact=True)).to_be_checked()
        expect(page.get_by_text("dog: 0 images")).to_be_visible()
        shots("camera-live")
        record.scroll_into_view_if_needed()
        box = record.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.wait_for_timeout(1500)
        page.mouse.up()
        added = page.locator('[data-testid="stAlert"]', has_text="captures to dog")
        expect(added).to_be_visible()
        n = int(re.search(r"Added (\d+) captures to dog", added.inner_text())[1])
        assert n >= 5
        expect(page.get_by_text(f"dog: {n} images")).to_be_visible()
        expect(page.get_by_text(f"{n} captures added to dog this session")).to_be_visible()
        shots("camera-added")
    ws = Workspace.from_env(home)
    assert len(data.list_images("webcam", ws=ws, class_name="dog")) == n
    assert [v["summary"] for v in data.list_versions("webcam", ws)] == [
        "created empty", f"added {n} to 'dog'"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                              "chromium); the browser test needs one")
def test_review_labels_and_relabel_one_from_the_grid(tmp_path):
    from playwright.sync_api import expect

    from tests.support.labels import colour_dataset
    from tlcore import data
    from tlcore.workspace import Workspace

    home = tmp_path / "workspace"
    ws = Workspace.from_env(home)
    manifest, swapped = colour_dataset(ws, per_class=8, flipped=1)
    with studio_page(tmp_path, home) as (page, shots):
        expect(page.locator(".st-key-review_start button")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(800)  # the page's first run has settled
        _pick(page, "review_size", "32")
        _pick(page, "review_weights", "Random init (a quick check)")
        page.locator(".st-key-review_start button").click()
        # The review runs in a worker (features, then the cross-validated ranking).
        expect(page.get_by_text(re.compile(r"^\d+ suspect labels? among 16 images"))
               ).to_be_visible(timeout=180_000)
        shots("review-grid")
        # Both suspects are the two swapped images: relabel the most suspicious one.
        page.get_by_role("radio", name="Relabel", exact=True).first.click()
        apply = page.get_by_role("button", name="Apply: relabel 1, remove 0")
        expect(apply).to_be_enabled()
        apply.click()
        expect(page.get_by_text(re.compile(r"1 relabelled, 0 removed"))).to_be_visible()
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        shots("review-applied")
    after = {im["sha256"][:16]: im for im in data.load_manifest("colours", ws)["images"]}
    before = {im["sha256"][:16]: im for im in manifest["images"]}
    fixed = [i for i in swapped if after[i]["class"] != before[i]["class"]]
    assert len(fixed) == 1  # one flipped label, fixed; the other kept
    assert all(after[i]["class"] == im["class"] for i, im in before.items() if i not in fixed)
    assert len(data.list_versions("colours", ws)) == 2
