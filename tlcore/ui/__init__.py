"""Streamlit helpers shared by `app.py` and the pages.

The only package under `tlcore` that imports Streamlit; everything else in
`tlcore` runs without it (workers, CLI, notebooks). Like the pages, it never
imports TensorFlow. One small module per concern:

* `flash`: a message kept for the next script run (the rerun after an action).
* `text`: user-supplied strings as plain text, percentages.
* `status`: run-status icons, colours and badges.
* `evaluation`: stored evaluations, cached per file version.
* `cli`: `python -m tlcore ...` calls under a spinner.
* `predict`: classifying pictures with a finished run (Evaluate and Train pages).
* `deeplinks`: a deep link opened while signed out, kept through the sign-in.
* `identity`: who is signed in (OpenID Connect, proxy headers or none), and their role.
* `network`: the warning while the studio is open to the network without a login.
* `device`: the server's device probe, run once in a background thread.
* `config_widgets`: widget arguments from the config declaration.
* `tables`: frames for download that a spreadsheet shows as data.
* `signin`: the sign-in gate before every page, and who is signed in (sidebar).
* `present`: the read-only presenter view's link.
* `access`: the page's actor; controls disabled and actions refused by role.
* `train_form`: the Train form's state (defaults, the `?cfg=` link, the RunConfig).
* `train_widgets`, `train_preview`: the Train form's tabs, and what its config builds.
* `live_panel`: the Train page's runs panel (progress, curves, log, Cancel, Resume).
* `selection`: chart selection events in the shapes the browser sends them.
* `runs_table`, `runs_compare`: the Runs page's table (columns, selection, `?runs=`) and
  its comparison fragment.
"""
