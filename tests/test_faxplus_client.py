"""The FAX.PLUS client's outcome mapping, driven through httpx.MockTransport (faults on demand)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from mailfax.faxplus import (
    LIST_PAGE,
    AmbiguousApiError,
    FaxPlusClient,
    NotFoundApiError,
    PermanentApiError,
    TransientApiError,
    parse_api_time,
)

TOKEN = "alohi_pat_TOPSECRET"


def client(handler: httpx.MockTransport) -> FaxPlusClient:
    return FaxPlusClient("https://api.test/v3", TOKEN, transport=handler)


async def test_sent_faxes_are_listed_newest_first_page_by_page() -> None:
    """The order is asked for (the default is not documented) and pages follow by offset: a
    second fuller than a page is listed whole."""
    crowded = [{"id": f"c{i}", "submit_time": "2026-11-27 10:00:05"} for i in range(80)]
    asked: list[dict[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        asked.append(params)
        offset, limit = int(params.get("offset", 0)), int(params["limit"])
        return httpx.Response(200, json={"data": {"records": crowded[offset : offset + limit]}})

    listed = await client(httpx.MockTransport(handle)).list_sent_faxes(0.0)
    assert {fax.id for fax in listed.faxes} == {f"c{i}" for i in range(80)}
    assert listed.unlisted_seconds == frozenset()
    assert [(p["sort_by"], p["order"], p.get("offset")) for p in asked] == [
        ("date", "desc", None),
        ("date", "desc", str(LIST_PAGE)),
    ]


async def test_an_ignored_offset_falls_back_to_time_windows() -> None:
    """Should FAX.PLUS ignore `offset`: after a page of one second that brings nothing new,
    the listing goes on from the second before, and says which second it could not list."""
    crowded = [{"id": f"c{i}", "submit_time": "2026-11-27 10:00:05"} for i in range(LIST_PAGE)]
    older = [{"id": "o1", "submit_time": "2026-11-27 10:00:03"}]
    asked: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        before = request.url.params.get("before")
        asked.append(before)
        records = older if before is not None and before < "2026-11-27 10:00:05" else crowded
        return httpx.Response(200, json={"data": {"records": records}})

    listed = await client(httpx.MockTransport(handle)).list_sent_faxes(0.0)
    assert {fax.id for fax in listed.faxes} == {f"c{i}" for i in range(LIST_PAGE)} | {"o1"}
    assert asked == [None, None, "2026-11-27 10:00:04"]
    assert listed.unlisted_seconds == {parse_api_time("2026-11-27 10:00:05")}


async def test_a_listing_page_that_fails_once_is_asked_again() -> None:
    answers = iter([503, 200])

    def handle(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        records = [{"id": "f1", "submit_time": "2026-11-27 10:00:05"}]
        return httpx.Response(status, json={"data": {"records": records}})

    listed = await client(httpx.MockTransport(handle)).list_sent_faxes(0.0)
    assert [fax.id for fax in listed.faxes] == ["f1"]


async def test_send_posts_the_documented_payload() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"ids": {"+17185554567": "abc123"}})

    api = client(httpx.MockTransport(handle))
    ids = await api.send_fax(
        "+16465550001", ["+17185554567"], ["/transient-1"], "hi", ["mailfax", "mailfax-job:j1"]
    )
    assert ids == {"+17185554567": "abc123"}
    request = seen[0]
    assert request.url.path == "/v3/accounts/self/outbox"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "from": "+16465550001",
        "to": ["+17185554567"],
        "files": ["/transient-1"],
        "comment": {"text": "hi", "tags": ["mailfax", "mailfax-job:j1"]},
        "options": {"retry": {"count": 0, "delay": 0}},
        "return_ids": True,
    }


async def test_upload_uses_the_fax_file_part() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.params["format"] == "pdf"
        assert b'name="fax_file"; filename="a.pdf"' in request.content
        return httpx.Response(200, json={"path": "/transient-xyz"})

    assert (
        await client(httpx.MockTransport(handle)).upload_file("a.pdf", b"%PDF-") == "/transient-xyz"
    )


async def test_429_is_transient_with_retry_after() -> None:
    api = client(httpx.MockTransport(lambda r: httpx.Response(429, headers={"Retry-After": "17"})))
    with pytest.raises(TransientApiError) as caught:
        await api.send_fax("+1", ["+2"], ["/p"], "", [])
    assert caught.value.retry_after == 17.0


async def test_server_error_on_send_is_ambiguous_but_transient_on_reads() -> None:
    api = client(httpx.MockTransport(lambda r: httpx.Response(500, json={"error": "internal"})))
    with pytest.raises(AmbiguousApiError):
        await api.send_fax("+1", ["+2"], ["/p"], "", [])
    with pytest.raises(TransientApiError):
        await api.get_fax("f1")


async def test_connection_refused_is_transient() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TransientApiError):
        await client(httpx.MockTransport(handle)).send_fax("+1", ["+2"], ["/p"], "", [])


async def test_lost_answer_to_a_send_is_ambiguous() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(AmbiguousApiError):
        await client(httpx.MockTransport(handle)).send_fax("+1", ["+2"], ["/p"], "", [])


async def test_4xx_is_permanent_with_the_api_text_and_no_token() -> None:
    body = {"error": "invalid_payload", "description": "comment is not of type 'object'"}
    api = client(httpx.MockTransport(lambda r: httpx.Response(400, json=body)))
    with pytest.raises(PermanentApiError) as caught:
        await api.send_fax("+1", ["+2"], ["/p"], "", [])
    assert "not of type 'object'" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.status_code == 400


async def test_missing_fax_is_not_found() -> None:
    api = client(httpx.MockTransport(lambda r: httpx.Response(404, json={"error": "not_found"})))
    with pytest.raises(NotFoundApiError):
        await api.get_fax("nope")


async def test_send_answer_without_ids_is_ambiguous() -> None:
    api = client(httpx.MockTransport(lambda r: httpx.Response(201, json={})))
    with pytest.raises(AmbiguousApiError):
        await api.send_fax("+1", ["+2"], ["/p"], "", [])


async def test_a_listing_told_to_wait_long_hands_the_wait_to_its_caller() -> None:
    """A 429 Retry-After is honoured: a short one waited out, a long one raised at once."""
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        wait = "30" if len(asked) == 1 else "0"
        return httpx.Response(429, headers={"Retry-After": wait}, json={"error": "slow down"})

    api = client(httpx.MockTransport(handle))
    with pytest.raises(TransientApiError) as raised:
        await api.list_sent_faxes(0.0)
    assert raised.value.retry_after == 30.0 and len(asked) == 1
    with pytest.raises(TransientApiError):
        await api.list_outbox()
    assert len(asked) == 4  # a short wait is waited out, up to three tries


async def test_a_request_as_a_whole_is_bounded_by_the_timeout() -> None:
    """httpx bounds each phase; a send that trickles must still end within request_timeout
    (its worker's lease depends on it), as a lost answer."""

    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers
        raise AssertionError

    api = FaxPlusClient(
        "https://api.test/v3", TOKEN, timeout=0.2, transport=httpx.MockTransport(handle)
    )
    with pytest.raises(AmbiguousApiError, match="TimeoutError"):
        await api.send_fax("+16465550001", ["+17185554567"], ["/t"], "hi", [])
