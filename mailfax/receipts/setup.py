"""Builds the receipt composer a configured gateway uses: its address, host, policy and
templates (read from [receipts] templates_dir once, at start-up)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from mailfax.config import Settings
from mailfax.logs import log_event
from mailfax.receipts.compose import ReceiptComposer
from mailfax.receipts.policy import ReceiptPolicy
from mailfax.receipts.templates import ReceiptTemplates, load_templates
from mailfax.users import UserDirectory

log = logging.getLogger("mailfax.receipts")


def _log_template_problem(name: str, problem: str) -> None:
    log_event(
        log,
        "receipt.template_broken",
        logging.ERROR,
        template=name,
        problem=problem,
        fallback="built-in",
    )


def receipt_templates(templates_dir: str) -> ReceiptTemplates:
    """The built-in templates, with those in `templates_dir` replacing them by name."""
    if not templates_dir:
        return ReceiptTemplates()
    return ReceiptTemplates(load_templates(Path(templates_dir)), _log_template_problem)


def reporting_host(settings: Settings, fqdn: str) -> str:
    """The host receipts name (Message-ID, Reporting-MTA, footer): [receipts] hostname, else
    the domain of [receipts] from, else `fqdn` (the machine's), else [smtp] domain: a machine
    without a proper name reports as "localhost", which tells a sender nothing."""
    from_domain = settings.receipts.from_address.rpartition("@")[2]
    for host in (settings.receipts.hostname, from_domain, fqdn):
        if host and not host.casefold().startswith("localhost"):
            return host
    return settings.smtp.domain


def receipt_composer(settings: Settings) -> ReceiptComposer:
    """Receipts as this host sends them: From [receipts] from, or mailfax@<this host>."""
    host = reporting_host(settings, socket.getfqdn())
    return ReceiptComposer(
        settings.receipts.from_address or f"mailfax@{host}",
        host,
        settings.smtp.domain,
        receipt_templates(settings.receipts.templates_dir),
        ReceiptPolicy.from_settings(
            settings.receipts, UserDirectory(settings.users_path).without_success_receipts
        ),
        settings.queue.max_lifetime,
        cover_page=settings.faxplus.cover_page == "always",
    )
