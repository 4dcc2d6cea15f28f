"""Sphinx configuration of the mailfax manual (`make docs`); MyST reads the Markdown pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailfax import __version__
from mailfax.config_reference import reference_markdown

project = "mailfax"
author = "the mailfax authors"
copyright = "the mailfax authors, MIT licence"
release = version = __version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
# drafts/ holds other contributors' notes until they are folded into pages; _generated/ is
# included by a page, not a page of its own.
exclude_patterns = ["_build", "drafts", "_generated"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
# Blocks without a language are terminal output and config excerpts: shown as written.
highlight_language = "none"
html_theme = "furo"
html_title = f"mailfax {__version__}"


def _write_reference(app: Any) -> None:
    """The configuration reference, rendered from mailfax/config.py on every build."""
    target = Path(app.srcdir) / "_generated" / "config-reference.md"
    target.parent.mkdir(exist_ok=True)
    text = reference_markdown()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app: Any) -> None:
    app.connect("builder-inited", _write_reference)
