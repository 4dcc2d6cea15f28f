"""The README stays short and true: the banner as printed, a working first fax, links that exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mailfax.app import Endpoints
from mailfax.cli import _banner
from mailfax.config import load_settings
from mailfax.config_reference import keys

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_fits_on_a_screen_or_two() -> None:
    assert len(README.splitlines()) <= 150


def test_the_readme_banner_is_what_make_run_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's banner, with its clone at /home/you/mailfax, is the embedded default's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / ".venv" / "bin" / "mailfax")])
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "mailfax").touch()
    settings = load_settings(environ={})
    settings.state_path.mkdir()
    endpoints = Endpoints(
        ("127.0.0.1", 2525),
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/webhooks/faxplus/not-shown",
        "http://127.0.0.1:8081/v3",
        "mailfax-data/receipts/new",
    )
    printed = _banner(settings, endpoints, frozenset({"smtp", "web", "worker"}))
    printed = printed.replace(str(tmp_path.resolve()), "/home/you/mailfax")
    assert f"```\n{printed}\n```" in README


def test_the_first_fax_example_names_its_attachment() -> None:
    swaks = re.search(r"swaks --server 127\.0\.0\.1:2525 .*?invoice\.pdf\n", README, re.S)
    assert swaks is not None
    assert "--attach-name invoice.pdf" in swaks.group(0)
    assert "--attach-type application/pdf" in swaks.group(0)


def test_the_readme_links_into_every_page_of_the_manual() -> None:
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", README))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert linked == pages
    assert "make run" in README and "make test" in README


def test_the_configuration_page_includes_the_generated_reference() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert "{include} _generated/config-reference.md" in page
    assert len(keys()) > 80
