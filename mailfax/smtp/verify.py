"""Sender verification for trusted relays: Authentication-Results, or DKIM and SPF over DNS."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from email.message import EmailMessage
from typing import Any

import dkim
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import spf

from mailfax.config import SmtpSettings
from mailfax.logs import log_event
from mailfax.policy import Refusal
from mailfax.sender_policy import aligned, authentication_results_verdict, domain_of

log = logging.getLogger("mailfax.smtp")

_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver] = contextvars.ContextVar("resolver")
# The client the relay in front received the mail from, as its Received header names it.
_RECEIVED_FROM_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")


class DnsUnavailable(Exception):
    """A lookup timed out or no server answered: the verdict is unknown, so the mail waits."""


def _records(name: str, qtype: str) -> list[Any]:
    try:
        return list(_RESOLVER.get().resolve(name, qtype, raise_on_no_answer=False, search=False))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (
        dns.exception.Timeout,
        dns.resolver.NoNameservers,
        dns.resolver.NoResolverConfiguration,
    ):
        raise DnsUnavailable(f"no answer for {name} {qtype}") from None


def _dkim_txt(name: bytes, timeout: float = 5) -> bytes | None:
    try:
        records = _records(name.decode("ascii"), "TXT")
    except DnsUnavailable as exc:
        raise dkim.DnsTimeoutError(str(exc)) from None
    return b"".join(records[0].strings) if records else None


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 5) -> list[Any]:
    """pyspf's DNSLookup hook, answering from the verifying gateway's resolver."""
    try:
        records = _records(name, qtype)
    except DnsUnavailable as exc:
        raise spf.TempError(f"DNS {exc}") from None
    found: list[Any] = []
    for rdata in records:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, str(rdata.exchange))))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


# pyspf looks every record up through its module-level DNSLookup (its own tests replace it
# the same way); the resolver itself comes from a context variable, per verification.
spf.DNSLookup = _spf_lookup


def make_resolver(servers: tuple[str, ...], timeout: float) -> dns.resolver.Resolver | None:
    """A resolver for the configured servers ("IP" or "IP:PORT"), or the system's; None when
    the system has none configured (verification then fails closed)."""
    try:
        resolver = dns.resolver.Resolver(configure=not servers)
    except dns.resolver.NoResolverConfiguration:
        return None
    if servers:
        nameservers: list[str | dns.nameserver.Nameserver] = []
        for server in servers:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            nameservers.append(dns.nameserver.Do53Nameserver(host or server, int(port or 53)))
        resolver.nameservers = nameservers
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


class SenderVerifier:
    """`[smtp] verify_sender` for mail from trusted relays; None from verify() means verified."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._mode = settings.verify_sender
        self._authserv_id = settings.authserv_id
        self._timeout = settings.dns_timeout
        self._resolver = (
            make_resolver(settings.dns_resolvers, settings.dns_timeout)
            if self._mode == "dkim-spf"
            else None
        )

    @property
    def enabled(self) -> bool:
        return self._mode != "none"

    async def verify(
        self, headers: EmailMessage, raw: bytes, mail_from: str, helo: str, client: str
    ) -> Refusal | None:
        from_addresses = [a.addr_spec for a in getattr(headers["From"], "addresses", ())]
        if len(from_addresses) != 1 or "@" not in from_addresses[0]:
            return Refusal(550, "5.7.1", "Sender not verified: the mail needs one From address")
        from_domain = domain_of(from_addresses[0])
        if self._mode == "authentication-results":
            why = authentication_results_verdict(
                [str(v) for v in headers.get_all("Authentication-Results") or []],
                self._authserv_id,
                from_domain,
            )
        else:
            received = str(headers.get("Received") or "")
            match = _RECEIVED_FROM_IP.search(received)
            sender_ip = match.group(1) if match else client
            try:
                why = await asyncio.to_thread(
                    self._dkim_spf, raw, from_domain, mail_from, helo, sender_ip
                )
            except DnsUnavailable as exc:
                log_event(log, "smtp.verify_dns_failed", logging.WARNING, error=str(exc))
                return Refusal(
                    451, "4.4.3", "Sender could not be verified: DNS did not answer; try later"
                )
        if why is None:
            return None
        log_event(log, "smtp.sender_not_verified", logging.WARNING, peer=client, reason=why)
        return Refusal(550, "5.7.1", f"Sender not verified: {why}")

    def _dkim_spf(
        self, raw: bytes, from_domain: str, mail_from: str, helo: str, sender_ip: str
    ) -> str | None:
        """Blocking (DNS, RSA): run in a thread. DMARC's rule without its record: an aligned
        DKIM signature or an aligned SPF pass."""
        if self._resolver is None:
            raise DnsUnavailable("no DNS resolver is configured")
        # asyncio.to_thread runs this in a copy of the caller's context: set only here.
        _RESOLVER.set(self._resolver)
        try:
            signatures = dkim.DKIM(raw, timeout=int(self._timeout) or 1)
            count = sum(1 for name, _ in signatures.headers if name.lower() == b"dkim-signature")
            for index in range(count):
                if signatures.verify(idx=index, dnsfunc=_dkim_txt):
                    signer = (signatures.domain or b"").decode("ascii", errors="replace")
                    if aligned(signer, from_domain):
                        return None
        except dkim.DnsTimeoutError as exc:
            raise DnsUnavailable(str(exc)) from None
        except dkim.DKIMException:
            pass  # a malformed signature is no signature; SPF may still pass
        if mail_from and aligned(domain_of(mail_from), from_domain):
            result, _ = spf.check2(
                i=sender_ip, s=mail_from, h=helo or "unknown", querytime=4 * self._timeout
            )
            if result == "pass":
                return None
            if result == "temperror":
                raise DnsUnavailable(f"SPF lookup for {domain_of(mail_from)} failed")
        return f"no aligned DKIM signature and no aligned SPF pass for {from_domain}"
