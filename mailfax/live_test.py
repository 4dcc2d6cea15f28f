"""`mailfax doctor --live-test NUMBER`: one real test fax, and what the account really does.

The FAX.PLUS docs leave open which ids agree, the listing's default order, whether the account
redials by itself and what a fax record keeps of the send. mailfax is built to be right in every
reading; this finds out which one the configured account is, and stores it for the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailfax.fax_identity import (
    comment_proof,
    comment_with_marker,
    digits,
    name_proof,
    proven_jobs,
    upload_name,
)
from mailfax.faxplus import ApiError, FaxPlusClient, FaxRecord, NotFoundApiError
from mailfax.reconcile import submitted_time
from mailfax.store import Store
from mailfax.typeset import text_pdf

POLL_INTERVAL = 2.0
ORDER_PAGE = 50
WEBHOOK_WAIT = 30.0  # seconds a webhook may trail the final record
WEBHOOK_POLL = 0.5
# Hints mailfax parks itself (hook ids of its own), as opposed to FAX.PLUS's webhooks.
INTERNAL = frozenset({"", "backstop", "reconcile", "operator", "listing"})


@dataclass
class LiveReport:
    """What the test fax showed: facts for the store, and a line for the operator each."""

    facts: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def say(self, line: str) -> None:
        self.lines.append(line)


async def live_test(
    api: FaxPlusClient,
    store: Store,
    from_number: str,
    number: str,
    timeout: float,
    clock: Callable[[], float] = time.time,
    webhook_wait: float = WEBHOOK_WAIT,
) -> LiveReport:
    """Send one single-page test fax to `number`, wait up to `timeout` seconds for its final
    record (and up to `webhook_wait` more for its webhook), and report (and store) what the
    account did."""
    report = LiveReport()
    token = f"livetest{secrets.token_hex(6)}"
    began = clock()
    path = await api.upload_file(
        upload_name(token, 0, "test.pdf"),
        text_pdf(["mailfax live test", f"test {token}", "This page tests a fax gateway."]),
    )
    uploaded = clock()
    comment = comment_with_marker("mailfax live test", token)
    ids = await api.send_fax(from_number, [number], [path], comment, ["mailfax", f"test:{token}"])
    sent = clock()
    send_id = ids.get(number) or next(iter(ids.values()), "")
    report.say(f"upload {uploaded - began:.1f} s, send {sent - uploaded:.1f} s: id {send_id}")
    found = await _final_record(api, send_id, token, number, began, timeout, clock)
    if found is None:
        report.ok = False
        report.say(f"no final fax record of the test fax within {timeout:g} s")
        return report
    record, how = found
    done = clock()
    report.say(
        f"result {record.status} after {done - sent:.1f} s: record id {record.id} (found by {how})"
    )
    try:
        by_send_id = await api.get_fax(send_id)
        known = by_send_id.id == record.id
    except NotFoundApiError:
        known = False
    webhook_ids = await _webhook_ids(store, sent - 1.0, min(webhook_wait, timeout), clock)
    facts: dict[str, Any] = {
        "send_id_is_record_id": send_id == record.id,
        "get_fax_knows_send_id": known,
        "record_keeps_comment": comment_proof(record.comment) == token,
        "record_file_name_is_upload_name": name_proof(record.file_name) == token,
        "record_max_retry": record.max_retry,
        "webhook_ids": webhook_ids,
        "listing_default_order": await _default_order(api, record.id),
        "tested_at": began,
    }
    facts["ids_agree"] = bool(
        facts["send_id_is_record_id"] and webhook_ids and set(webhook_ids) <= {record.id}
    )
    report.facts = facts
    report.say(
        "ids: send and record "
        + ("agree" if facts["send_id_is_record_id"] else f"differ ({send_id} / {record.id})")
        + f"; GET /faxes/<send id> {'finds' if known else 'does not find'} the fax"
    )
    report.say(
        "webhook: "
        + (
            f"arrived as id {', '.join(webhook_ids)}"
            if webhook_ids
            else "none seen (is the gateway running with its webhook registered?)"
        )
    )
    report.say(
        f"record keeps the send's comment: {'yes' if facts['record_keeps_comment'] else 'no'}; "
        f"its file_name is the upload's: "
        f"{'yes' if facts['record_file_name_is_upload_name'] else 'no'}"
    )
    if not (facts["record_keeps_comment"] or facts["record_file_name_is_upload_name"]):
        report.say(
            "warning: records carry no proof of their job, so a send whose answer is lost is "
            "left for the operator (mailfax jobs retry ID --adopt FAX_ID | --resend)"
        )
    retried = record.max_retry not in (None, 0)
    report.say(f"FAX.PLUS retries: {'yes' if retried else 'no'} (max_retry {record.max_retry})")
    report.say(f"listing default order: {facts['listing_default_order']}")
    await store.learn_faxplus_facts(facts, clock())
    return report


async def _final_record(
    api: FaxPlusClient,
    send_id: str,
    token: str,
    number: str,
    since: float,
    timeout: float,
    clock: Callable[[], float],
) -> tuple[FaxRecord, str] | None:
    """The test fax's final record and how it was found: under the send's id, by the proof
    it carries, or (a diagnostic the operator asked for, not a gateway decision) as the only
    fax to the number since the test began."""
    deadline = clock() + timeout
    while clock() < deadline:
        with contextlib.suppress(ApiError):
            record = await api.get_fax(send_id)
            if record.is_final:
                return record, "its send id"
        try:
            faxes = (await api.list_sent_faxes(since - 120)).faxes
        except ApiError:
            faxes = []
        final = [fax for fax in faxes if fax.is_final]
        proven = [fax for fax in final if token in proven_jobs(fax)]
        if proven:
            return proven[0], "the proof it carries"
        recent = [
            fax
            for fax in final
            if digits(fax.to) == digits(number) and submitted_time(fax) >= since - 1
        ]
        if len(recent) == 1:
            return recent[0], "number and time (it carries no proof)"
        await asyncio.sleep(POLL_INTERVAL)
    return None


async def _webhook_ids(
    store: Store, since: float, wait: float, clock: Callable[[], float]
) -> list[str]:
    """Ids of the webhooks the gateway parked since the send (waiting up to `wait` seconds
    for one): no job has the test fax, so its webhook stays parked. Another fax's webhook at
    the same moment could be among them."""
    deadline = clock() + wait
    while True:
        events = await store.due_fax_events(float("inf"), 1000)
        ids = {e.fax_id for e in events if e.received_at >= since and e.hook_id not in INTERNAL}
        if ids or clock() >= deadline:
            return sorted(ids)
        await asyncio.sleep(WEBHOOK_POLL)


async def _default_order(api: FaxPlusClient, newest: str) -> str:
    """How GET /faxes lists when not told (the docs do not say), by where the test fax (the
    newest of all) stands on the first page."""
    page = [fax.id for fax in await api.list_sent_faxes_unsorted(limit=ORDER_PAGE)]
    if len(page) < 2:
        return "unknown (fewer than two sent faxes)"
    if page[0] == newest:
        return "newest first"
    if page[-1] == newest or (newest not in page and len(page) == ORDER_PAGE):
        return "oldest first"
    return "neither newest nor oldest first"
