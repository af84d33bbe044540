"""Names are shown as typed on every page: never as Markdown, LaTeX, directives or chart HTML.

Class names come from folder names or CSV labels and run names are free text, so
a name can be `![x](http://…)` (every viewer's browser would fetch that URL),
`:red[…]`, `$…$` or `<b>…</b>`. The tests below give a dataset and runs such
names, visit every page and check that no string Streamlit renders as Markdown,
and no string inside a chart, holds one of them unescaped.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.support.evalutil import make_run, run_config, write_evaluation
from tests.support.markup import chart_strings, markdown_strings, shown
from tlcore import data
from tlcore.data.demo import write_class_folders
from tlcore.results.evaluate import classification_metrics, mistakes
from tlcore.runs import queue
from tlcore.store import FAILED, QUEUED, RunStore
from tlcore.ui.text import plain

CLASSES = ("![x](http://127.0.0.1:9/x.png)", ":red[boom]", "$x^2$", "<b>bold</b> & co")
RUNS = {
    "a": "![a](http://127.0.0.1:9/a.png) :red[a] <b>a</b>",
    "b": "[b](http://127.0.0.1:9/b) $b^2$ <i>b</i>",
    "c": ":blue-background[c] **c**",
    "queued": "![q](http://127.0.0.1:9/q.png) queued",
    "failed": "$$f$$ [f](http://127.0.0.1:9/f)",
}
ERROR = "Out of memory on ![e](http://127.0.0.1:9/e.png)"
NAMES = (*CLASSES, *RUNS.values(), ERROR)
# Markup that a name must never bring into rendered Markdown.
MARKUP = ("![", "](http", ":red[", ":blue-background[", "$x^2$", "$b^2$", "$$f$$", "<b>", "<i>")


def csv_dataset(ws, tmp_path, name: str, classes: tuple[str, ...], per_class: int = 6):
    """A CSV of `filepath,label` rows labelling generated images with `classes`.

    It lies in the workspace's `import/` folder, where the browser may name it.
    """
    folders = [f"c{i}" for i in range(len(classes))]
    root = write_class_folders(ws.import_dir / f"src-{name}", folders, per_class=per_class,
                               size=32)
    labels = root / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filepath", "label"])
        for folder, label in zip(folders, classes, strict=True):
            for path in sorted((root / folder).iterdir()):
                writer.writerow([f"{folder}/{path.name}", label])
    return labels


def evaluation(ws, run_id: str, dataset: str, seed: int) -> None:
    """A stored evaluation in which most images of a class are taken for the next one."""
    manifest = json.loads((ws.dataset_dir(dataset) / "manifest.json").read_text())
    classes = manifest["classes"]
    splits = {}
    for split in ("test", "val"):
        # The val split lacks the first class, so its notes name that class.
        images = [im for im in manifest["images"] if im["split"] == split
                  and (split == "test" or im["label"] != 0)]
        y = np.array([im["label"] for im in images])
        probs = np.random.default_rng(seed).dirichlet(np.ones(len(classes)), len(y))
        probs[np.arange(len(y)), (y + seed) % len(classes)] += 2.0
        files = [im["file"] for im in images]
        m = classification_metrics(y, probs, classes)
        m["mistakes"] = mistakes(y, probs, classes, files)
        m["samples"] = {"file": files, "true": y.tolist(),
                        "predicted": probs.argmax(1).tolist(),
                        "confidence": (probs.max(1) / probs.sum(1)).round(6).tolist()}
        splits[split] = m
    write_evaluation(ws, run_id, {
        "run_id": run_id, "dataset": dataset, "trained_on": dataset, "domain_shift": False,
        "classes": classes, "image_size": 32, "created": 1.8e9, "eval_seconds": 1.0,
        "splits": splits})


@pytest.fixture
def hostile(ws, tmp_path, monkeypatch) -> dict[str, str]:
    """Dataset "hostile" with hostile class names, and runs with hostile names.

    Runs a and b are completed and evaluated, c is completed, one run is queued
    (no worker starts) and the newest one failed with a hostile error message.
    """
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])
    data.import_dataset(csv_dataset(ws, tmp_path, "hostile", CLASSES), "hostile", val=0.25,
                        test=0.25, ws=ws)
    ids = {"a": make_run(ws, run_config("hostile", "imagenet"), name=RUNS["a"],
                         val_accuracy=[0.5, 0.7], test_accuracy=0.6)}
    for key in ("b", "c"):
        ids[key] = make_run(ws, run_config("hostile"), name=RUNS[key],
                            val_accuracy=[0.4, 0.5], test_accuracy=0.45)
    ids["queued"] = make_run(ws, run_config("hostile"), name=RUNS["queued"], status=QUEUED)
    ids["failed"] = make_run(ws, run_config("hostile"), name=RUNS["failed"], status=FAILED)
    RunStore(ws).update_run(ids["failed"], error=ERROR + "\nTraceback: ...")
    evaluation(ws, ids["a"], "hostile", seed=1)
    evaluation(ws, ids["b"], "hostile", seed=0)  # right on every image
    return ids


def assert_shown_as_typed(at, page: str) -> str:
    """Check `at`'s Markdown and charts for unescaped names; return its Markdown, resolved."""
    assert not at.exception, (page, at.exception)
    texts = markdown_strings(at)
    for text in texts:
        for markup in MARKUP:
            assert markup not in text, (page, text)
    for text in chart_strings(at):
        assert "<b>" not in text and "<i>" not in text, (page, text)
    return "\n".join(shown(t) for t in texts)


def test_every_page_shows_hostile_names_as_typed(app, hostile):
    at = app()  # Data
    text = assert_shown_as_typed(at, "data")
    assert all(f"**{name}**" in text for name in CLASSES)  # the samples, one row per class
    assert f"**{plain(CLASSES[0])}**" in [m.value for m in at.markdown]
    (balance,) = at.get("plotly_chart")
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in chart_strings(at)

    at.switch_page("app_pages/train.py").run()
    text = assert_shown_as_typed(at, "train")
    assert f"#### {RUNS['failed']}" in text and ERROR in text
    assert RUNS["queued"] in text  # "Also in the queue" and the sidebar's queue
    at.button(key=f"train_resume_{hostile['failed']}").click().run()
    text = assert_shown_as_typed(at, "train after resume")
    # The line by Launch names the resumed run (no toast: it stayed over the page).
    assert f"{RUNS['failed']} · queued: it starts as soon as a worker is free." in text

    at.switch_page("app_pages/runs.py").run()
    # Newest first: failed, queued, c, b, a.
    at.session_state["runs_table"] = {"selection": {"rows": [2, 3, 4], "columns": []}}
    at.run()
    text = assert_shown_as_typed(at, "runs")
    assert f"Evaluate run {RUNS['c']} on the Evaluate page" in text
    assert f"Bars above zero: {RUNS['b']} has the higher F1" in text
    titles = chart_strings(at)
    assert any(t.startswith("![a](http://127.0.0.1:9/a.png) :red[a] &lt;b&gt;a&lt;/b&gt; · test")
               for t in titles)
    at.button(key="runs_delete").click().run()
    text = assert_shown_as_typed(at, "runs delete")
    assert f"Delete {RUNS['c']}, {RUNS['b']}, {RUNS['a']} with" in text  # in table order

    at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="eval_run").set_value(hostile["a"]).run()
    at.selectbox(key="eval_cell_true").set_value(CLASSES[0])
    at.selectbox(key="eval_cell_pred").set_value(CLASSES[1]).run()
    text = assert_shown_as_typed(at, "evaluate")
    assert f"of **{CLASSES[0]}** predicted as **{CLASSES[1]}**" in text
    order = sorted(CLASSES)  # the dataset's class order
    assert f"{order[0]} → {order[1]}" in text  # a mistake's caption
    at.radio(key="eval_split").set_value("val").run()
    text = assert_shown_as_typed(at, "evaluate val")
    assert f"No examples of {CLASSES[0]}" in text


def test_the_presenter_view_shows_hostile_run_names_as_typed(app, hostile):
    at = app()
    at.query_params["runs"] = f"{hostile['a']},{hostile['b']}"
    at.switch_page("app_pages/present.py").run()
    assert_shown_as_typed(at, "present")
    (diff,) = at.table  # st.table renders its headers and cells as Markdown
    headers = [*diff.value.columns, *diff.value.index]
    assert plain(RUNS["a"]) in headers and plain(RUNS["b"]) in headers
    assert all(markup not in str(cell) for markup in MARKUP
               for cell in [*headers, *diff.value.to_numpy().ravel()])


def test_refused_import_names_hostile_classes_as_typed(app, ws, tmp_path):
    labels = csv_dataset(ws, tmp_path, "lonely", CLASSES[:1])
    at = app()
    at.text_input(key="data_folder_path").input(str(labels)).run()
    at.text_input(key="data_folder_name").input("lonely").run()
    at.button(key="data_folder_import").click().run()
    assert_shown_as_typed(at, "data import")
    (error,) = at.error
    assert f"only 1 label found ({CLASSES[0]})" in shown(error.value)
