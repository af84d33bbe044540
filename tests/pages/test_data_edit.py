"""Data page studio: create a dataset empty, upload, camera, gallery, classes, versions, train."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from streamlit.components.v2.bidi_component.main import _make_trigger_id

from tests.support.markup import shown
from tests.support.runs import config_for
from tlcore import config, data
from tlcore.data.demo import synth_image
from tlcore.runs import launch
from tlcore.store import ACTIVE_STATUSES, RunStore
from tlcore.ui import camera_burst, data_edit
from tlcore.ui.live_panel import LAUNCHED_KEY


def _image(seed: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    synth_image(seed % 4, 32, np.random.default_rng(seed)).convert("RGB").save(buf, fmt)
    return buf.getvalue()


def _create(app, name="toys", classes="cat, dog"):
    at = app()
    at.text_input(key="data_new_name").input(name)
    at.text_input(key="data_new_classes").input(classes).run()
    at.button(key="data_new_create").click().run()
    return at


def _open_tab(at, label: str):
    at.session_state["data_edit_tab"] = label
    return at.run()


def _said(at) -> str:
    """Every success box of the page, as shown."""
    return " | ".join(shown(box.value) for box in at.success)


def _captions(at) -> str:
    return " | ".join(shown(c.value) for c in at.caption)


def _metrics(at) -> list[str]:
    return [m.value for m in at.metric][:2]


def test_create_an_empty_dataset_and_add_images_by_upload(app, ws):
    at = _create(app)
    assert not at.exception and not at.error
    assert "Created **toys** with 2 classes" in " ".join(box.value for box in at.success)
    assert at.selectbox(key="data_selected").value == "toys"
    assert _metrics(at) == ["0", "2"]
    assert at.button_group(key="data_edit_class").options == ["cat", "dog"]
    assert at.button_group(key="data_edit_class").value == "cat"
    assert "cat: 0 images (train 0, validation 0, test 0)" in _captions(at)

    uploads = [(f"cat{i}.png", _image(i), "image/png") for i in range(3)]
    at.file_uploader(key="data_edit_upload_0").set_value(
        [*uploads, ("notes.png", b"not an image", "image/png")])
    at.run()
    assert at.button(key="data_edit_upload_add").label == "Add 4 images"
    at.button(key="data_edit_upload_add").click().run()
    assert not at.exception and not at.error
    (note,) = at.info
    assert "Added 3 images to cat" in shown(note.value)
    assert "1 file skipped: notes.png (not an image" in shown(note.value)
    assert _metrics(at) == ["3", "2"]
    assert "cat: 3 images (train" in _captions(at)
    # The uploader is new and empty: the files are in.
    assert not at.file_uploader(key="data_edit_upload_1").value
    assert [im["class"] for im in data.list_images("toys", ws=ws)] == ["cat"] * 3
    assert len(data.list_versions("toys", ws)) == 2


def _hold(at, payload):
    """Send `payload` as the recorder's `frames` trigger, as the browser does when a hold ends.

    AppTest has no handle on components-v2 elements: the trigger goes in the
    widget states of the next run, under the id Streamlit gives the element's
    events, so the page's callback runs on it as it does in a browser.
    """
    (recorder,) = [e for e in at._tree if getattr(e, "type", None) == "bidi_component"]
    assert recorder.key == data_edit.BURST_KEY
    states = at._tree.get_widget_states()
    trigger = states.widgets.add()
    trigger.id = _make_trigger_id(recorder.proto.id, "events")
    trigger.json_trigger_value = json.dumps([{"event": camera_burst.EVENT, "value": payload}])
    return at._run(states)


def _frames(seeds, fmt="JPEG") -> list[str]:
    mime = "jpeg" if fmt == "JPEG" else "png"
    return [f"data:image/{mime};base64," + base64.b64encode(_image(i, fmt)).decode()
            for i in seeds]


def test_a_hold_of_the_camera_adds_every_frame_in_one_version(app, ws):
    at = _open_tab(_create(app), "Camera")
    at.button_group(key="data_edit_class").set_value("dog").run()
    assert "0 captures added to dog this session" in _captions(at)
    _hold(at, _frames(range(7)))
    assert not at.exception and not at.error
    assert "Added 7 captures to dog (version" in _said(at)
    assert "7 captures added to dog this session" in _captions(at)
    assert "dog: 7 images (train" in _captions(at)
    assert _metrics(at) == ["7", "2"]
    assert [v["summary"] for v in data.list_versions("toys", ws)] == ["created empty",
                                                                    "added 7 to 'dog'"]
    # The trigger lasts one run: drawing the page again adds nothing more.
    at.run()
    assert "Added" not in _said(at) and len(data.list_images("toys", ws=ws)) == 7

    _hold(at, _frames(range(7, 10), "PNG"))
    assert "Added 3 captures to dog" in _said(at)
    assert "10 captures added to dog this session" in _captions(at)
    sources = [im["source"] for im in data.list_images("toys", ws=ws)]
    assert sources[0].startswith("camera-") and sources[0].endswith("-01.jpg")
    assert sources[-1].endswith("-03.png")


def test_a_bad_frame_an_empty_hold_and_a_repeated_frame(app, ws):
    at = _open_tab(_create(app), "Camera")
    _hold(at, [*_frames(range(2)), "data:text/html;base64,PHA+"])
    (error,) = at.error
    assert shown(error.value).startswith("Frame 3 of 3 is not a JPEG or PNG image")
    assert "nothing was added" in error.value and "\n" not in error.value
    assert not data.list_images("toys", ws=ws) and len(data.list_versions("toys", ws)) == 1

    _hold(at, [])  # a hold before the camera had a picture
    assert not at.error and "Added" not in _said(at) and not at.info
    assert len(data.list_versions("toys", ws)) == 1

    _hold(at, _frames([1, 2, 1]))  # a still scene: the same frame twice
    (note,) = at.info
    assert "Added 2 captures to cat" in shown(note.value)
    assert "1 file skipped" in shown(note.value) and "already in the dataset" in note.value
    assert "2 captures added to cat this session" in _captions(at)

    _hold(at, _frames(range(camera_burst.MAX_FRAMES + 1)))
    (error,) = at.error
    assert f"{camera_burst.MAX_FRAMES + 1} frames in one hold > the cap of " \
           f"{camera_burst.MAX_FRAMES}" in shown(error.value)
    assert len(data.list_images("toys", ws=ws)) == 2


def test_gallery_moves_and_removes_images_in_one_version_each(app, ws):
    at = _create(app)
    added = data.add_images("toys", "cat", [_image(i) for i in range(4)], ws=ws)
    at = _open_tab(at, "Gallery")
    picks = [c.key for c in at.checkbox if c.key.startswith("data_edit_pick_")]
    assert picks == [f"data_edit_pick_{i}" for i in added.ids]
    for image in added.ids[:2]:
        at.checkbox(key=f"data_edit_pick_{image}").check()
    at.run()
    at.selectbox(key="data_edit_move_to").set_value("dog")
    at.button(key="data_edit_move").click().run()
    assert not at.exception and not at.error
    assert "Moved to dog: 2 images" in _said(at)
    assert {im["id"]: im["class"] for im in data.list_images("toys", ws=ws)} == {
        added.ids[0]: "dog", added.ids[1]: "dog", added.ids[2]: "cat", added.ids[3]: "cat"}
    at.checkbox(key=f"data_edit_pick_{added.ids[2]}").check().run()
    at.button(key="data_edit_remove").click().run()
    assert "Removed 1 image" in _said(at)
    assert [im["id"] for im in data.list_images("toys", ws=ws)] == [
        added.ids[0], added.ids[1], added.ids[3]]
    history = data.list_versions("toys", ws)
    assert [v["summary"] for v in history][-2:] == ["relabelled 2 'cat'->'dog'",
                                                     "removed 1 from 'cat'"]

    at = _open_tab(at, "Versions")
    (table,) = [t.value for t in at.table if "Changes" in t.value.columns]
    assert list(table["Changes"].map(shown))[:2] == ["removed 1 from 'cat'",
                                                     "relabelled 2 'cat'->'dog'"]
    assert table["Version"][0] == history[-1]["id"][:12] + " (now)"
    assert len(table) == len(history)


def test_class_edits_and_their_errors(app, ws):
    at = _open_tab(_create(app), "Classes")
    at.text_input(key="data_edit_new_class").input("bird").run()
    at.button(key="data_edit_add_class").click().run()
    assert "Added class bird" in _said(at)
    assert data.show_dataset("toys", ws)["classes"] == ["cat", "dog", "bird"]
    at.text_input(key="data_edit_new_class").input("dog").run()
    at.button(key="data_edit_add_class").click().run()
    (error,) = at.error
    assert "class named 'dog' already" in shown(error.value) and "\n" not in error.value
    at.selectbox(key="data_edit_old_class").set_value("cat")
    at.text_input(key="data_edit_rename_to").input("kitten").run()
    at.button(key="data_edit_rename").click().run()
    assert "Renamed cat to kitten" in _said(at)
    at.selectbox(key="data_edit_old_class").set_value("bird").run()
    at.button(key="data_edit_remove_class").click().run()
    assert data.show_dataset("toys", ws)["classes"] == ["kitten", "dog"]
    assert len(data.list_versions("toys", ws)) == 4


def test_train_on_this_dataset_opens_the_train_form_on_it(app, ws):
    at = _create(app)
    at.button(key="data_edit_train").click().run()
    assert not at.exception
    assert at.selectbox(key="cfg.dataset").value == "toys"


def _trainable(ws, name="toys") -> None:
    """Enough images in both classes for a run (`data.check_trainable`)."""
    for n, class_name in enumerate(("cat", "dog")):
        data.add_images(name, class_name, [_image(10 * n + i) for i in range(8)], ws=ws)


def test_train_again_launches_the_latest_runs_settings_on_the_new_version(app, ws):
    at = _create(app)
    _trainable(ws)
    store = RunStore(ws)
    store.create_run(config_for("toys", epochs=1), "older")
    cfg = config_for("toys", epochs=3, head={"dense": [16], "dropout": 0.2},
                     train={"epochs": 3, "batch_size": 4, "learning_rate": 0.005})
    first = store.create_run(cfg, "first")
    ws.run(first).dir.mkdir(parents=True)
    before = data.record_run_version(ws, first, "toys")
    at.run()
    assert "with the settings of its latest run, first" in at.button(
        key="data_edit_train_again").help
    at = _open_tab(at, "Camera")
    _hold(at, _frames(range(30, 36)))
    head = data.show_dataset("toys", ws)["fingerprint"]
    assert head != before
    at.button(key="data_edit_train_again").click().run()
    try:
        assert not at.exception and not at.error
        run = store.list_runs()[-1]
        assert run["id"] != first and run["config"] == cfg.to_dict()
        assert data.run_version(ws, run["id"]) == head
        assert f"Queued **{run['name']}** on toys as it is now, with the settings of first" in \
            _said(at)
        (link,) = [p for p in at.get("page_link") if "Follow" in p.proto.label]
        assert shown(link.proto.label) == f"Follow {run['name']} on the Train page"
        assert link.proto.page.endswith("train") and run["id"] in link.proto.query_string
        assert at.session_state[LAUNCHED_KEY] == run["id"]
    finally:
        for r in store.list_runs(statuses=ACTIVE_STATUSES):
            launch.delete(r["id"], ws=ws)


def test_train_again_without_runs_uses_the_train_pages_defaults(app, ws):
    at = _create(app)
    assert "the Train page's default settings" in at.button(key="data_edit_train_again").help
    at.button(key="data_edit_train_again").click().run()
    (error,) = at.error  # the classes are empty: nothing is queued
    assert "cannot train a classifier" in shown(error.value) and "\n" not in error.value
    assert not RunStore(ws).list_runs()
    _trainable(ws)
    at.button(key="data_edit_train_again").click().run()
    try:
        assert not at.exception and not at.error
        (run,) = RunStore(ws).list_runs()
        assert run["config"] == config.preset(config.DEFAULT_PRESET, "toys").to_dict()
        assert "with the default settings" in _said(at)
    finally:
        for r in RunStore(ws).list_runs(statuses=ACTIVE_STATUSES):
            launch.delete(r["id"], ws=ws)
