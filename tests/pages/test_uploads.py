"""The upload bound: Streamlit holds uploads in memory, so the studio keeps them small."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tlcore.ui import studio

ROOT = Path(__file__).resolve().parents[2]


def test_uploads_are_bounded_to_what_an_import_needs():
    server = tomllib.loads((studio.APP.parent / ".streamlit" / "config.toml").read_text())[
        "server"]
    # Streamlit's default is 200 MB; 2048 let seven uploads exhaust a 2 GiB server.
    assert 50 <= server["maxUploadSize"] <= 500
    security = (ROOT / "docs" / "security.md").read_text()
    assert f"server.maxUploadSize = {server['maxUploadSize']}" in security
    assert "STREAMLIT_SERVER_MAX_UPLOAD_SIZE" in security
