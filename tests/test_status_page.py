"""The status page on a running gateway: login, listing, filter, detail, escaping; and the page
as headless Chromium renders it (DOM and screenshot)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mailfax.app import Gateway
from mailfax.jobs import JobState
from tests.conftest import eventually
from tests.gateway import gateway_env, receipts_in, smtp_transaction, start_gateway
from tests.pdfs import fax_mail

TOKEN = "status-token-123"
CHROMIUM = shutil.which("chromium")


@dataclass
class Site:
    gateway: Gateway
    url: str
    jobs: dict[str, str]  # what each job is (delivered, failed, hostile) -> job id


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, http_admin_token=TOKEN))
    assert gateway.endpoints is not None and gateway.endpoints.http_url
    hostile = fax_mail(subject="<script>alert('x')</script>", body="<b>bold</b> & more")
    for mail, number in (
        (fax_mail(), "17185554567"),
        (fax_mail(), "16465550015"),
        (hostile, "19175554321"),
    ):
        outcome = await smtp_transaction(gateway.endpoints, mail, [f"{number}@fax.local"])
        assert outcome.final[0] == 250

    async def three_receipts() -> bool:
        return len(receipts_in(tmp_path)) == 3

    await eventually(three_receipts, what="three receipts")
    assert gateway.store is not None
    found = await gateway.store.list_jobs(None, None, "", 10)
    by_number = {summary.job.number: summary.job.id for summary in found}
    jobs = {
        "delivered": by_number["+17185554567"],
        "failed": by_number["+16465550015"],
        "hostile": by_number["+19175554321"],
    }
    yield Site(gateway, gateway.endpoints.http_url, jobs)
    await gateway.stop()


def client(site: Site, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=site.url, **kwargs)  # type: ignore[arg-type]


def rows(html: str) -> list[tuple[str, str]]:
    """(state, job id) of every row of the jobs table."""
    return re.findall(r'<tr data-state="(\w+)"><td><a href="/jobs/(\w+)">', html)


async def test_the_page_is_off_without_an_admin_token(tmp_path: Path) -> None:
    gateway = await start_gateway(tmp_path)
    try:
        assert gateway.endpoints is not None
        async with httpx.AsyncClient(base_url=str(gateway.endpoints.http_url)) as http:
            assert (await http.get("/")).status_code == 404
            assert (await http.get("/", headers={"Authorization": "Bearer x"})).status_code == 404
    finally:
        await gateway.stop()


async def test_the_page_needs_the_token(site: Site) -> None:
    async with client(site) as http:
        refused = await http.get("/?state=failed")
        assert refused.status_code == 401
        assert '<form method="post" action="/login">' in refused.text
        assert 'name="next" value="/?state=failed"' in refused.text
        assert TOKEN not in refused.text
        assert (await http.get("/", headers={"Authorization": "Bearer nope"})).status_code == 401
        wrong = await http.post("/login", data={"token": "nope", "next": "/"})
        assert wrong.status_code == 401 and "not right" in wrong.text

        login = await http.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert (await http.get("/")).status_code == 200  # the cookie is kept by the client

    async with client(site) as http:
        bookmarked = await http.get(f"/?state=failed&token={TOKEN}")
        assert bookmarked.status_code == 303
        assert bookmarked.headers["location"] == "/?state=failed"  # the token leaves the URL
        page = await http.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_listing_filter_and_detail(site: Site) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with client(site, headers=bearer) as http:
        everything = (await http.get("/")).text
        assert sorted(rows(everything)) == sorted(
            [
                ("delivered", site.jobs["delivered"]),
                ("failed", site.jobs["failed"]),
                ("delivered", site.jobs["hostile"]),
            ]
        )
        assert "+1 718-555-4567" in everything and "alice@example.com" in everything
        assert rows((await http.get("/?state=failed")).text) == [("failed", site.jobs["failed"])]
        assert rows((await http.get("/?state=queued")).text) == []
        assert 'id="no-jobs"' in (await http.get("/?state=queued")).text

        detail = (await http.get(f"/jobs/{site.jobs['failed']}")).text
        history = re.findall(r"<tr><td>[\dT:Z-]+</td><td>\w*</td><td>(\w+)</td>", detail)
        assert history == ["queued", "uploading", "submitting", "submitted", "failed"]
        assert "failed_unallocated_number" in detail
        assert "<td>faxed</td><td>invoice.pdf</td>" in detail
        assert "<dt>State</dt><dd>sent</dd>" in detail  # the receipt
        assert (await http.get("/jobs/nope")).status_code == 404

        hostile = (await http.get(f"/jobs/{site.jobs['hostile']}")).text
        assert "<script>" not in hostile and "<b>" not in hostile
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in hostile
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in hostile


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run has it)")
async def test_chromium_renders_the_page_and_the_filter_works(site: Site, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    screenshot = tmp_path / "status.png"
    # The filter form submits GET /?state=failed; Chromium logs in with the bookmarkable
    # ?token=, follows the redirect with the cookie, and renders the filtered list.
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1100,600",
        f"--screenshot={screenshot}",
        "--dump-dom",
        f"{site.url}/?state=failed&token={TOKEN}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    dom, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    html = dom.decode()
    assert rows(html) == [("failed", site.jobs["failed"])]
    # The filter form is what produced this URL: GET / with the chosen state.
    assert '<form class="filter" method="get" action="/">' in html
    assert '<option value="failed" selected="">failed</option>' in html
    assert "<title>mailfax status</title>" in html

    with Image.open(screenshot) as image:
        assert image.size == (1100, 600)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    # Not a blank page: text, the table's rules and the state badges give many colours.
    assert colours is None or len(colours) > 20
    # The failed badge's red (#fbd7d7) is on screen: the row was rendered with its style.
    assert colours is None or any(rgb == (0xFB, 0xD7, 0xD7) for _, rgb in colours)
    assert site.gateway.store is not None
    job = await site.gateway.store.get_job(site.jobs["failed"])
    assert job is not None and job.state is JobState.FAILED
