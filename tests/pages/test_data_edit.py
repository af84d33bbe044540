"""Data page studio: create a dataset empty, upload, camera, gallery, classes, versions."""

from __future__ import annotations

import io

import numpy as np

from tests.support.markup import shown
from tlcore import data
from tlcore.data.demo import synth_image


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
    assert at.selectbox(key="data_edit_class").options == ["cat", "dog"]
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


def test_camera_captures_are_added_at_once_and_counted(app, ws):
    at = _open_tab(_create(app), "Camera")
    at.selectbox(key="data_edit_class").set_value("dog").run()
    for n in (1, 2):
        (camera,) = at.camera_input
        camera.set_value((f"shot{n}.jpg", _image(n, "JPEG"), "image/jpeg"))
        at.run()
        assert not at.exception and not at.error
        assert f"Capture {n} added to dog" in _said(at)
        assert f"{n} capture{'s' if n > 1 else ''} added to dog this session" in _captions(at)
        assert at.camera_input[0].key != camera.key  # the camera is ready for the next one
    assert [im["class"] for im in data.list_images("toys", ws=ws)] == ["dog", "dog"]
    assert _metrics(at) == ["2", "2"]


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
