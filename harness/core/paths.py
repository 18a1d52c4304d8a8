"""Where the project's own files are, and the default model-cache folder."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # the folder holding the top-level packages (a source tree)
DATA_DIR = PROJECT / "data"  # the shipped datasets, one MMRec folder each
QUICKSTART = PROJECT / "examples" / "quickstart.toml"  # the default experiment of ``tru run``
DEFAULT_CACHE = Path(".cache") / "models"  # trained models, relative to the working directory
