"""Prometheus metrics: counters bumped where events happen, job gauges read from the store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mailfax.jobs import JobState
from mailfax.store import JobStats, Store, StoreUnavailable

# Counters are per process, as Prometheus expects; it sums them over instances.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

MAILS_ACCEPTED = Counter(
    "mailfax_mails_accepted",
    "Mails answered 250 at the end of DATA (durably queued)",
    registry=REGISTRY,
)
MAILS_REFUSED = Counter(
    "mailfax_mails_refused",
    "SMTP refusals (4xx and 5xx replies), by enhanced status code",
    ["reason"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "mailfax_faxplus_request_duration_seconds",
    "FAX.PLUS API call latency, by endpoint",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "mailfax_faxplus_request_errors",
    "FAX.PLUS API calls that failed, by endpoint and error (HTTP status or 'connection')",
    ["endpoint", "error"],
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Counter(
    "mailfax_webhook_events",
    "fax_sent webhooks at intake (parked, duplicate, refused) and hints checked with FAX.PLUS "
    "(confirmed, contradicted, dropped)",
    ["outcome"],
    registry=REGISTRY,
)
RECEIPTS = Counter(
    "mailfax_receipts",
    "Receipt delivery attempts by outcome: sent, retry (failed, tried again later), dropped",
    ["outcome"],
    registry=REGISTRY,
)
ACCOUNT_PROBLEMS = Counter(
    "mailfax_faxplus_account_problems",
    "Fax results that need the FAX.PLUS account's operator: insufficient_credit (sending waits "
    "for credit) and converter (FAX.PLUS could not convert a document)",
    ["problem"],
    registry=REGISTRY,
)
for _problem in ("insufficient_credit", "converter"):
    ACCOUNT_PROBLEMS.labels(_problem)
RECEIPTS_MINIMAL = Counter(
    "mailfax_receipts_minimal",
    "Receipts sent as a short plain one because the full receipt could not be composed "
    "(each also logged as receipt.compose_failed)",
    registry=REGISTRY,
)
ITEMS_FAILED = Counter(
    "mailfax_worker_item_failures",
    "Items (a job, a confirmation, a receipt) whose handling raised, by worker; the others "
    "of their batch went on",
    ["worker"],
    registry=REGISTRY,
)
for _outcome in ("sent", "retry", "dropped"):
    RECEIPTS.labels(_outcome)
for _outcome in ("parked", "duplicate", "refused", "confirmed", "contradicted", "dropped"):
    WEBHOOK_EVENTS.labels(_outcome)

_REPLY = re.compile(r"^([45]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})\b)?")
_IDS = re.compile(r"/(accounts|faxes|outbox|files|report|hooks|numbers)/[^/?]+")


def count_smtp_reply(reply: str) -> None:
    """Count a 4xx/5xx SMTP reply as a refusal under its enhanced status code."""
    match = _REPLY.match(reply)
    if match:
        MAILS_REFUSED.labels(match.group(2) or match.group(1)).inc()


def api_endpoint(method: str, path: str) -> str:
    """The endpoint of a request with its ids taken out: "GET /accounts/{id}/faxes/{id}"."""
    return f"{method} {_IDS.sub(lambda m: f'/{m.group(1)}/{{id}}', path)}"


class _JobGauges(Collector):
    """Jobs by state and the queue's age, as the store holds them at scrape time."""

    def __init__(self, stats: JobStats | None, now: float) -> None:
        self._stats = stats
        self._now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("mailfax_store_up", "1 if the store answered this scrape")
        up.add_metric([], 0.0 if self._stats is None else 1.0)
        yield up
        if self._stats is None:
            return
        jobs = GaugeMetricFamily("mailfax_jobs", "Jobs in the store, by state", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], float(self._stats.counts.get(state, 0)))
        yield jobs
        oldest = self._stats.oldest_unfinished
        age = GaugeMetricFamily(
            "mailfax_queue_oldest_age_seconds",
            "Age of the oldest job that is not final (0 when there is none)",
        )
        age.add_metric([], 0.0 if oldest is None else max(0.0, self._now - oldest))
        yield age
        unknown = self._stats.oldest_unknown
        undecided = GaugeMetricFamily(
            "mailfax_jobs_undecided_oldest_age_seconds",
            "How long the oldest lost send has been unknown (0 when there is none); one the "
            "reconciler cannot prove its own waits for `mailfax jobs retry ID --adopt|--resend`",
        )
        undecided.add_metric([], 0.0 if unknown is None else max(0.0, self._now - unknown))
        yield undecided


async def render_metrics(store: Store) -> bytes:
    """The Prometheus text exposition of this process's counters and the store's jobs."""
    try:
        stats: JobStats | None = await store.job_stats()
    except StoreUnavailable:
        stats = None
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_JobGauges(stats, time.time()))
    return generate_latest(REGISTRY) + generate_latest(snapshot)
