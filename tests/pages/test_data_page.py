"""Data page: zip upload with progress, refused uploads, demo dataset, details, delete."""

from __future__ import annotations

import io
import shutil
import zipfile

import streamlit as st

from tests.support.markup import shown
from tlcore import data
from tlcore.data import importer
from tlcore.data.demo import write_class_folders


def _zip_of_class_folders(tmp_path, classes=("cat", "dog"), per_class=6) -> bytes:
    root = write_class_folders(tmp_path / "src", classes, per_class=per_class, size=32)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, path.relative_to(root).as_posix())
        zf.writestr("__MACOSX/._junk.png", b"junk")
    return buf.getvalue()


def test_upload_zip_imports_and_shows_the_dataset(app, ws, tmp_path):
    at = app()
    at.file_uploader(key="data_upload").set_value(
        ("my pets.zip", _zip_of_class_folders(tmp_path), "application/zip"))
    at.run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception and not at.error
    assert [d["name"] for d in data.list_datasets(ws=ws)] == ["my-pets"]
    # The name is escaped, so it shows as typed whatever it contains.
    assert r"Imported **my\-pets**: 12 images in 2 classes" in at.success[0].value
    assert at.selectbox(key="data_selected").value == "my-pets"
    assert [m.value for m in at.metric][:2] == ["12", "2"]
    assert len(at.get("plotly_chart")) == 1
    # The skipped __MACOSX entry is listed with its reason, in a table that wraps text.
    (skipped,) = [t.value for t in at.table if "Reason" in t.value.columns]
    assert skipped["File"].map(shown).str.contains("__MACOSX").any() and skipped["Reason"].all()
    assert list(ws.tmp_dir.glob("upload-*")) == []


def test_skipped_files_show_whole_reasons_and_names_as_typed(app, ws, tmp_path):
    """Reasons wrap in full (no grid cutting them at its edge); names stay plain text."""
    zipped = io.BytesIO(_zip_of_class_folders(tmp_path))
    odd = "cat/[look](http:evil) *here* " + "long-" * 30 + "name.png"
    with zipfile.ZipFile(zipped, "a") as zf:
        zf.writestr(odd, b"not an image at all")
    at = app()
    at.file_uploader(key="data_upload").set_value(("odd.zip", zipped.getvalue(),
                                                   "application/zip"))
    at.run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception
    assert not [d for d in at.dataframe if "reason" in d.value.columns]
    (table,) = [t for t in at.table if "Reason" in t.value.columns]
    rows = dict(zip(table.value["File"].map(shown), table.value["Reason"].map(shown),
                    strict=True))
    assert odd in rows and rows[odd] and len(rows) == 2
    # The cells are Markdown: the link and emphasis are escaped, not rendered.
    raw = table.value.set_index(table.value["File"].map(shown)).loc[odd, "File"]
    assert "\\[look\\]\\(http\u2060\\:" in raw and r"\*here\*" in raw  # escaped, no autolink


def test_refused_upload_shows_one_line_reason_and_leaves_nothing(app, ws, tmp_path):
    at = app()
    at.file_uploader(key="data_upload").set_value(
        ("one.zip", _zip_of_class_folders(tmp_path, classes=("cat",)), "application/zip"))
    at.run()
    at.text_input(key="data_upload_name").input("single").run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception
    (error,) = at.error
    assert "class" in error.value and "\n" not in error.value
    assert data.list_datasets(ws=ws) == []
    assert not ws.dataset_dir("single").exists()


def test_folder_import_and_delete_with_confirmation(app, ws, tmp_path):
    folder = write_class_folders(ws.import_dir / "shapes", ("a", "b"), per_class=6, size=32)
    at = app()
    at.text_input(key="data_folder_path").input(str(folder)).run()
    at.button(key="data_folder_import").click().run()
    assert not at.exception and not at.error
    assert [d["name"] for d in data.list_datasets(ws=ws)] == ["shapes"]

    at.button(key="data_delete").click().run()
    assert "Delete **shapes**" in at.warning[-1].value
    at.button(key="data_delete_no").click().run()
    assert [d["name"] for d in data.list_datasets(ws=ws)] == ["shapes"]
    at.button(key="data_delete").click().run()
    at.button(key="data_delete_yes").click().run()
    assert not at.exception
    assert data.list_datasets(ws=ws) == []
    assert at.info[0].value == "Deleted dataset shapes."
    assert "No datasets yet" in at.info[1].value


def test_create_demo_dataset_in_one_click(app, ws):
    at = app()
    at.button(key="data_demo").click().run(timeout=120)
    assert not at.exception and not at.error
    (demo,) = data.list_datasets(ws=ws)
    assert demo["name"] == "demo" and len(demo["classes"]) >= 3
    assert at.button(key="data_demo").disabled


def test_failing_import_shows_one_line_error(app, ws):
    at = app()
    at.file_uploader(key="data_upload").set_value(
        ("broken.zip", b"PK\x03\x04 this is not a zip", "application/zip"))
    at.run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception
    (error,) = at.error
    assert shown(error.value).startswith("Refused: broken.zip is not a readable zip file")
    assert "\n" not in error.value
    assert data.list_datasets(ws=ws) == []
    assert list(ws.tmp_dir.iterdir()) == []
    assert not at.button(key="data_upload_import").disabled  # the page is ready for another


def test_server_paths_outside_the_allowed_roots_are_refused(app, ws, tmp_path):
    folder = write_class_folders(tmp_path / "elsewhere", ("a", "b"), per_class=6, size=16)
    at = app()
    for path in (str(folder), str(tmp_path / "missing"), f"{ws.import_dir}/../../elsewhere"):
        at.text_input(key="data_folder_path").input(path).run()
        at.button(key="data_folder_import").click().run()
        assert not at.exception
        (error,) = at.error
        assert error.value.startswith(f"Only paths inside {ws.weights_dir}, {ws.import_dir} "
                                      "can be used from the browser")
        assert "\n" not in error.value
    assert data.list_datasets(ws=ws) == [] and list(ws.tmp_dir.iterdir()) == []


def test_dataset_whose_files_are_gone_can_still_be_deleted(app, ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    data.import_dataset(folder, "gone", ws=ws)
    shutil.rmtree(ws.dataset_dir("gone") / "images")
    at = app()
    assert not at.exception
    assert any("missing on disk" in w.value for w in at.warning)
    shutil.rmtree(ws.dataset_dir("gone"))
    st.cache_data.clear()  # as after a restart: the manifest is read again
    at = app()
    assert not at.exception
    assert "folder" in at.error[0].value and "missing" in at.error[0].value
    at.button(key="data_delete").click().run()
    at.button(key="data_delete_yes").click().run()
    assert not at.exception
    assert data.list_datasets(ws=ws) == []


def test_imports_run_outside_the_page_process(app, ws, tmp_path, monkeypatch):
    def not_here(*args, **kwargs):
        raise AssertionError("decoding ran in the dashboard's process")

    monkeypatch.setattr(importer, "_import", not_here)
    at = app()
    at.file_uploader(key="data_upload").set_value(
        ("pets.zip", _zip_of_class_folders(tmp_path), "application/zip"))
    at.run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception and not at.error
    assert [d["name"] for d in data.list_datasets(ws=ws)] == ["pets"]


def _widget_keys(at) -> list[str]:
    """The keys of the main area's widgets, in reading order."""

    def walk(node):
        yield node
        for _, child in sorted(getattr(node, "children", {}).items()):
            yield from walk(child)

    return [node.key for node in walk(at.main) if getattr(node, "key", None)]


def test_first_visit_offers_the_demo_first_and_the_split_before_import(app):
    at = app()
    keys = _widget_keys(at)
    assert keys[0] == "data_demo" and at.button(key="data_demo").proto.type == "primary"
    assert not at.expander  # nothing to unfold: every way in is in view
    for split in ("data_val", "data_test", "data_seed"):
        assert keys.index(split) < keys.index("data_upload_import")
        assert keys.index(split) < keys.index("data_folder_import")


def test_add_a_dataset_stays_open_while_a_zip_is_chosen(app, ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("a", "b"), per_class=6, size=16)
    data.import_dataset(folder, "shapes", ws=ws)
    at = app()
    assert [e.label for e in at.expander][0] == "Add a dataset"
    assert not at.session_state["data_add"]  # folded while it is not in use
    for name in ("first.zip", "second.zip"):
        at.file_uploader(key="data_upload").set_value(
            (name, _zip_of_class_folders(tmp_path / name), "application/zip"))
        at.run()
        assert at.session_state["data_add"] is True
        assert not at.button(key="data_upload_import").disabled
    keys = _widget_keys(at)
    assert keys.index("data_seed") < keys.index("data_upload_import")


def test_an_import_empties_the_uploader_and_a_taken_name_is_refused_on_the_page(app, ws,
                                                                               tmp_path):
    at = app()
    at.file_uploader(key="data_upload").set_value(
        ("faces.zip", _zip_of_class_folders(tmp_path / "one"), "application/zip"))
    at.run()
    at.text_input(key="data_upload_name").input("faces_clean").run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception and not at.error
    # The zip is in: a new, empty uploader and name, and nothing to import again.
    (uploader,) = [u for u in at.get("file_uploader") if u.key.startswith("data_upload")]
    assert uploader.key != "data_upload" and not uploader.value
    assert at.text_input(key="data_upload_name").value == ""
    assert at.button(key="data_upload_import").disabled
    # Another zip under the same name: refused with what to do here, not a command to run.
    at.file_uploader(key=uploader.key).set_value(
        ("faces2.zip", _zip_of_class_folders(tmp_path / "two"), "application/zip"))
    at.run()
    at.text_input(key="data_upload_name").input("faces_clean").run()
    at.button(key="data_upload_import").click().run()
    assert not at.exception
    (error,) = at.error
    assert shown(error.value) == (
        "A dataset named faces_clean already exists. Type another name under Dataset name, or "
        "delete faces_clean first: choose it under Datasets below and use its Delete dataset "
        "button.")
    assert "python" not in error.value
    assert [d["name"] for d in data.list_datasets(ws=ws)] == ["faces_clean"]
    assert not at.button(key="data_upload_import").disabled  # the zip stays, to rename
