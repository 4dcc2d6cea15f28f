"""The SMTP listeners' TLS certificate: one server context, reloaded in place on SIGHUP."""

from __future__ import annotations

import logging
import ssl

from mailfax.logs import log_event

log = logging.getLogger("mailfax.smtp")


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context with the PEM certificate chain and key (TLS 1.2 or newer)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class TlsCertificate:
    """The context STARTTLS and the implicit-TLS listener share. Reloading loads the files
    into the same live context, so new handshakes get the new certificate and sessions
    already running keep theirs."""

    def __init__(self, cert: str, key: str) -> None:
        self._cert = cert
        self._key = key
        self.context = server_context(cert, key)

    def reload(self) -> bool:
        """Load the files again; a broken pair is logged and the old certificate kept."""
        try:
            # Into a scratch context first: a failed load must not touch the live one.
            server_context(self._cert, self._key)
            self.context.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as exc:
            log_event(log, "smtp.tls_reload_failed", logging.ERROR, cert=self._cert, error=str(exc))
            return False
        log_event(log, "smtp.tls_reloaded", cert=self._cert)
        return True
