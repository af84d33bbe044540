"""The dashboard itself: `app.py` (navigation, sign-in gate, sidebar) and `app_pages/`.

They ship inside the package, so `tlcore studio` serves them from any folder;
Streamlit reads their settings from `.streamlit/config.toml` beside `app.py`, and
people's secrets (`[auth]`) from `.streamlit/secrets.toml` in the folder the studio
is started from or in `~/.streamlit/`. This module only names the files: it
imports nothing.
"""

from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")
PAGES_DIR = APP.with_name("app_pages")
