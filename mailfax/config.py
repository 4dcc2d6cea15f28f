"""Loads one validated Settings object from a TOML file plus MAILFAX_* environment overrides."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from mailfax._http import parse_hostport
from mailfax.networks import Networks
from mailfax.number_policy import normalise_prefix
from mailfax.sandbox.faults import check_fault_settings
from mailfax.sandbox.variants import parse_variants
from mailfax.sender_policy import SenderPatterns

SANDBOX = "sandbox"


class ConfigError(Exception):
    """Invalid configuration; the message names the key, the problem and the fix."""


def _key(name: str) -> dict[str, str]:
    """Field metadata for a TOML key that is not a valid Python name."""
    return {"key": name}


def _secret(default: str = "") -> Any:
    """A string setting that may be written `env:NAME` or `file:/path`, and is never shown."""
    return field(default=default, repr=False, metadata={"secret": True})


LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
# phonenumbers' number types, by the names the [policy] refused_types setting uses.
NUMBER_TYPES = (
    "premium-rate",
    "shared-cost",
    "toll-free",
    "voip",
    "personal",
    "pager",
    "uan",
    "voicemail",
    "mobile",
    "emergency",
    "short-code",
)
VERIFY_SENDER_CHOICES = ("none", "authentication-results", "dkim-spf")


@dataclass(frozen=True)
class SmtpSettings:
    listen: str = "127.0.0.1:2525"
    domain: str = "fax.local"
    default_region: str = "US"
    max_recipients: int = 10
    max_message_size: str = "30MB"
    # Pages one mail may fax in total (all its documents).
    max_pages: int = 200
    # A mail with no document: "reject" (550 5.6.0) or "render" (its text typeset and faxed).
    body_only: str = "reject"
    # A second listener speaking TLS from the first byte (port 465); "" = none.
    tls_listen: str = ""
    # PEM files; with both set, `listen` offers STARTTLS. Reloaded on SIGHUP.
    tls_cert: str = ""
    tls_key: str = ""
    # "" = <state_dir>/users.toml, managed by `mailfax users`.
    users_file: str = ""
    # Unset = true unless every listener is on a loopback address (the embedded default).
    require_auth: bool | None = None
    # Clients that may submit without AUTH: an MTA in front, a scanner; loopback by default.
    trusted_networks: tuple[str, ...] = LOOPBACK_NETWORKS
    # Senders (addresses or "@domain") trusted relays may submit for; empty = any.
    allowed_senders: tuple[str, ...] = ()
    # For trusted relays: "none", "authentication-results" (topmost header, authserv_id) or
    # "dkim-spf" (mailfax verifies DKIM and SPF itself).
    verify_sender: str = "none"
    authserv_id: str = ""
    # DNS servers ("IP" or "IP:PORT") for dkim-spf; empty = the system's resolver.
    dns_resolvers: tuple[str, ...] = ()
    dns_timeout: float = 5.0

    @property
    def max_message_bytes(self) -> int:
        return parse_size(self.max_message_size)

    @property
    def auth_required(self) -> bool:
        """Clients outside trusted_networks must AUTH (default: unless only on loopback)."""
        if self.require_auth is not None:
            return self.require_auth
        listeners = [self.listen, self.tls_listen] if self.tls_listen else [self.listen]
        return not all(is_loopback_listener(listener) for listener in listeners)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert and self.tls_key)


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:8080"
    # "" derives the URL from the HTTP listener's actual address.
    public_url: str = "http://127.0.0.1:8080"
    # "" generates a secret on first start and keeps it in state_dir.
    webhook_secret: str = _secret()
    # Client networks (CIDR) allowed to post webhooks; empty = any (the secret path decides).
    webhook_allowed_networks: tuple[str, ...] = ()
    # Webhook requests per second from one client address; 0 = no limit.
    webhook_rate_limit: float = 200.0
    # Bearer token (or login) for the status page at /; "" = no status page.
    admin_token: str = _secret()


@dataclass(frozen=True)
class FaxplusSettings:
    api_url: str = SANDBOX
    token: str = _secret()
    from_number: str = ""
    user_id: str = "self"
    request_timeout: float = 30.0
    # A submitted fax with no final status after this long is polled (webhooks may never come).
    webhook_grace: float = 600.0
    # mailfax's own redials after busy / no answer, beyond FAX.PLUS's retry option.
    retries: int = 2
    # The mail's text becomes the fax comment, cut to this length.
    max_comment_chars: int = 2000
    # "never" | "always": a FAX.PLUS cover page in front of the documents.
    cover_page: str = "never"


@dataclass(frozen=True)
class StoreSettings:
    url: str = _secret()  # may carry a password


@dataclass(frozen=True)
class PolicySettings:
    """Which fax numbers may be dialled; each key can be overridden per user (users file)."""

    # ISO 3166 codes; empty = every country.
    allowed_countries: tuple[str, ...] = ()
    # E.164 prefixes such as "+1" or "+4930"; empty = every number.
    allowed_prefixes: tuple[str, ...] = ()
    blocked_prefixes: tuple[str, ...] = ()
    refused_types: tuple[str, ...] = ("premium-rate", "shared-cost", "emergency", "short-code")


@dataclass(frozen=True)
class LimitsSettings:
    """Abuse limits: quotas kept in the store, and caps on SMTP connections."""

    # Per sender (an authenticated user, or a relayed envelope sender); 0 = no limit.
    faxes_per_hour: int = 100
    pages_per_day: int = 2000
    # All senders together; 0 = no limit.
    global_faxes_per_hour: int = 0
    global_pages_per_day: int = 0
    max_connections: int = 100
    # Clients in trusted_networks (an MTA in front) are exempt: they fan out on purpose.
    max_connections_per_client: int = 10
    # Seconds one SMTP connection may last, and one DATA upload may take.
    session_deadline: float = 900.0
    data_deadline: float = 300.0
    # How often one connection may send each command (trusted networks: only AUTH counted).
    command_call_limit: int = 100
    # A mail past 1 MB holds a large-mail slot while it arrives: it must keep arriving at this
    # many bytes per second (over 5 s windows) or the connection is closed; 0 = no minimum.
    large_mail_min_rate: int = 20_000
    # Large mails one client address may send (or wait to send) at once; trusted networks exempt.
    large_mails_per_client: int = 1
    # Seconds a large mail waits for a free slot before it is answered 451 4.3.2.
    large_mail_wait: float = 30.0
    # What extracting one mail may cost in its worker process: CPU seconds and data memory.
    # A mail over either is refused 552 5.3.4 "too complex to fax"; 0 = no limit.
    extraction_cpu_seconds: float = 30.0
    extraction_memory: str = "1GB"
    # Decoded size (header dimensions x depth) one image frame, and all frames of one image,
    # may have; checked before decoding, a larger image is refused with the reason.
    image_frame_memory: str = "200MB"
    image_total_memory: str = "1GB"


@dataclass(frozen=True)
class ReceiptsSettings:
    from_address: str = field(default="", metadata=_key("from"))
    # "" = Maildir in state_dir; smtp://[user:password@]host[:port] or smtps:// (TLS at once).
    smarthost: str = _secret()
    # STARTTLS toward smtp:// smarthosts: "auto" (when offered), "always" or "never".
    smarthost_starttls: str = "auto"
    # "final": one receipt with each result; "all": also "accepted" and delay notices.
    notify: str = "final"
    # Seconds after acceptance when a fax still not final gets a delay notice (notify = all).
    delay_warning: float = 4 * 3600.0
    # One summary receipt per mail once all its recipients are final, instead of one each.
    group: bool = False
    # Attach FAX.PLUS's confirmation report (PDF) to receipts of delivered faxes.
    attach_report: bool = True
    # Attach a PNG thumbnail of the first faxed page to result receipts.
    attach_thumbnail: bool = False
    # Senders (addresses or "@domain") who get no receipt for a delivered fax, only failures.
    no_success_receipts: tuple[str, ...] = ()
    # Jinja2 templates that replace the built-in texts (see the README); "" = built-in only.
    templates_dir: str = ""


@dataclass(frozen=True)
class QueueSettings:
    min_backoff: float = 30.0
    max_backoff: float = 3600.0
    lease: float = 120.0
    shutdown_grace: float = 10.0
    # A job not final after this long fails, and its sender is told (Postfix: 5 days).
    max_lifetime: float = 5 * 24 * 3600.0
    # Wait this long after a send whose answer was lost before looking it up at FAX.PLUS.
    reconcile_after: float = 60.0
    # A job whose worker died this many times is quarantined (Mailman's MAX_BAK_COUNT).
    max_recoveries: int = 3


@dataclass(frozen=True)
class ConvertSettings:
    # "auto" = Office documents are converted to PDF when LibreOffice (soffice) is on PATH.
    office: str = "auto"
    timeout: float = 120.0  # seconds one conversion may take


@dataclass(frozen=True)
class SandboxSettings:
    listen: str = "127.0.0.1:8081"
    delay: float = 2.0
    # Fault injection, all off by default; these are SimulatorSettings fields of the same name.
    seed: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    latency: float = 0.0
    timeout_rate: float = 0.0
    hang: float = 60.0
    drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_rate: float = 0.0
    webhook_early_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_wrong_path_rate: float = 0.0
    # "" keeps the simulator's ledger in memory only.
    state_file: str = ""
    # Readings of FAX.PLUS other than the default one (mailfax simulator --help lists them).
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    state_dir: str = "mailfax-data"
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    faxplus: FaxplusSettings = field(default_factory=FaxplusSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    receipts: ReceiptsSettings = field(default_factory=ReceiptsSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    convert: ConvertSettings = field(default_factory=ConvertSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    log: LogSettings = field(default_factory=LogSettings)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def uses_sandbox(self) -> bool:
        return self.faxplus.api_url == SANDBOX

    @property
    def users_path(self) -> Path:
        users_file = self.smtp.users_file
        return Path(users_file) if users_file else self.state_path / "users.toml"


def is_loopback_listener(listen: str) -> bool:
    host, _ = parse_hostport(listen)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3}


def parse_size(text: str) -> int:
    """ "30MB" -> 30000000 (decimal units, as mail software advertises SIZE)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"expected a size such as 30MB or 500KB, got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply MAILFAX_* overrides, validate, return Settings."""
    env = os.environ if environ is None else environ
    file_name = path if path is not None else env.get("MAILFAX_CONFIG") or None
    data: dict[str, Any] = {}
    if file_name is not None:
        try:
            with open(file_name, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file_name} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file_name} is not valid TOML: {exc}") from exc
    settings: Settings = _build(Settings, data, "", env, str(file_name) if file_name else None)
    _validate(settings)
    return settings


def _toml_keys(cls: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    return {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}


def _build(
    cls: type[Any],
    data: Mapping[str, Any],
    section: str,
    env: Mapping[str, str],
    source: str | None,
) -> Any:
    keys = _toml_keys(cls)
    hints = typing.get_type_hints(cls)
    for name in data:
        if name not in keys:
            where = f"[{section}] {name}" if section else name
            close = difflib.get_close_matches(name, list(keys), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(keys)}"
            raise ConfigError(f"unknown configuration key {where} in {source}{hint}")
    values: dict[str, Any] = {}
    for key, fld in keys.items():
        kind = hints[fld.name]
        label = f"[{section}] {key}" if section else key
        if dataclasses.is_dataclass(kind):
            sub = data.get(key, {})
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{key} must be a table ([{key}]) in {source}")
            values[fld.name] = _build(typing.cast(type[Any], kind), sub, key, env, source)
            continue
        env_name = "MAILFAX_" + (f"{section}_{key}" if section else key).upper()
        if env_name in env:
            values[fld.name] = _coerce(kind, env[env_name], f"{label} (from ${env_name})", True)
        elif key in data:
            values[fld.name] = _coerce(kind, data[key], f"{label} (in {source})", False)
        if fld.metadata.get("secret") and fld.name in values:
            values[fld.name] = _resolve_secret(values[fld.name], label, env)
    return cls(**values)


def _resolve_secret(value: str, label: str, env: Mapping[str, str]) -> str:
    """`env:NAME` and `file:/path` keep secrets out of the config file; errors never show them."""
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in env:
            raise ConfigError(
                f"{label} = {value!r}: ${name} is not set. Fix: export {name}, or set the key"
            )
        return env[name]
    if value.startswith("file:"):
        path = value.removeprefix("file:")
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{label} = {value!r}: cannot read {path}: {exc.strerror or exc}. "
                "Fix: create the file, readable by mailfax"
            ) from None
    return value


_ENV_BOOL = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _coerce(kind: Any, value: Any, label: str, from_env: bool) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    if typing.get_origin(kind) is tuple:
        return _as_strings(value, label, from_env)
    parsers: dict[Any, Callable[[Any], Any]] = {
        str: _as_str,
        int: _as_int,
        float: _as_float,
        bool: _as_bool,
    }
    try:
        return parsers[kind](value)
    except (TypeError, ValueError) as exc:
        expected = {
            str: "a string",
            int: "a whole number",
            float: "a number",
            bool: "true or false",
        }
        raise ConfigError(f"{label} must be {expected[kind]}, got {value!r}") from exc


def _as_strings(value: Any, label: str, from_env: bool) -> tuple[str, ...]:
    """A list of strings: a TOML array, or comma-separated in the environment."""
    if from_env and isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f'{label} must be a list of strings, e.g. ["a", "b"], got {value!r}')
    return tuple(value)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    return int(value)


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    return float(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _ENV_BOOL:
        return _ENV_BOOL[value.lower()]
    raise ValueError


def _fail(key: str, value: object, problem: str, fix: str) -> typing.NoReturn:
    raise ConfigError(f"{key} = {value!r}: {problem}. Fix: {fix}")


def _check_listen(key: str, value: str) -> None:
    try:
        parse_hostport(value)
    except ValueError:
        _fail(key, value, "not a listen address", 'write HOST:PORT, e.g. "127.0.0.1:2525"')


def _check_http_url(key: str, value: str, example: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail(key, value, "not an http(s) URL", f'write e.g. "{example}"')


def _validate(s: Settings) -> None:
    _check_listen("[smtp] listen", s.smtp.listen)
    _check_listen("[http] listen", s.http.listen)
    _check_listen("[sandbox] listen", s.sandbox.listen)
    if not re.fullmatch(r"[A-Za-z0-9.-]+", s.smtp.domain) or "." not in s.smtp.domain:
        _fail("[smtp] domain", s.smtp.domain, "not a domain name", 'write e.g. "fax.example.com"')
    if s.smtp.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        _fail(
            "[smtp] default_region",
            s.smtp.default_region,
            "not a region phonenumbers knows",
            'use an ISO 3166 country code such as "US", "DE" or "GB"',
        )
    if s.smtp.max_recipients < 1:
        _fail("[smtp] max_recipients", s.smtp.max_recipients, "must be at least 1", "set 1 or more")
    try:
        size = parse_size(s.smtp.max_message_size)
    except ValueError:
        _fail("[smtp] max_message_size", s.smtp.max_message_size, "not a size", 'write e.g. "30MB"')
    if size < 10_000:
        _fail("[smtp] max_message_size", s.smtp.max_message_size, "too small", 'use e.g. "30MB"')
    if s.smtp.max_pages < 1:
        _fail("[smtp] max_pages", s.smtp.max_pages, "must be at least 1", "e.g. 200")
    if s.smtp.body_only not in ("reject", "render"):
        _fail("[smtp] body_only", s.smtp.body_only, "unknown choice", '"reject" or "render"')
    if s.faxplus.max_comment_chars < 0:
        _fail("[faxplus] max_comment_chars", s.faxplus.max_comment_chars, "negative", "e.g. 2000")
    if s.faxplus.cover_page not in ("never", "always"):
        _fail("[faxplus] cover_page", s.faxplus.cover_page, "unknown choice", '"never" or "always"')
    if s.convert.office not in ("auto", "off"):
        _fail("[convert] office", s.convert.office, "unknown choice", '"auto" or "off"')
    if s.convert.timeout <= 0:
        _fail("[convert] timeout", s.convert.timeout, "must be > 0", "e.g. 120")
    if s.http.public_url:
        _check_http_url("[http] public_url", s.http.public_url, "https://fax-gw.example.com")
    if s.faxplus.api_url != SANDBOX:
        _check_http_url("[faxplus] api_url", s.faxplus.api_url, "https://restapi.fax.plus/v3")
        if not s.faxplus.token:
            _fail(
                "[faxplus] token",
                "",
                "a token is required for the real API",
                "create a Personal Access Token in FAX.PLUS and set MAILFAX_FAXPLUS_TOKEN",
            )
    numbers = [n.strip() for n in s.faxplus.from_number.split(",")]
    if s.faxplus.from_number and not all(re.fullmatch(r"\+[0-9]{8,}", n) for n in numbers):
        _fail(
            "[faxplus] from_number",
            s.faxplus.from_number,
            "not an E.164 number, or comma-separated E.164 numbers",
            'write e.g. "+15550000001" (or "+15550000001,+15550000002" to let FAX.PLUS '
            'balance sends over both), or "" for the account\'s first active number',
        )
    if s.faxplus.request_timeout <= 0:
        _fail("[faxplus] request_timeout", s.faxplus.request_timeout, "must be > 0", "e.g. 30")
    if s.receipts.from_address:
        try:
            validate_email(s.receipts.from_address, check_deliverability=False)
        except EmailNotValidError as exc:
            _fail("[receipts] from", s.receipts.from_address, str(exc), 'e.g. "fax@example.com"')
    _validate_receipts(s.receipts)
    if s.store.url and not s.store.url.startswith(("sqlite", "postgresql")):
        # Only the scheme: the rest may hold a password.
        scheme = s.store.url.partition(":")[0]
        _fail("[store] url", f"{scheme}:...", "unsupported database", '"" for SQLite in state_dir')
    if not 0 < s.queue.min_backoff <= s.queue.max_backoff:
        _fail(
            "[queue] min_backoff", s.queue.min_backoff, "must be > 0 and <= max_backoff", "e.g. 30"
        )
    if s.queue.lease <= 0 or s.queue.shutdown_grace < 0:
        _fail("[queue] lease", s.queue.lease, "lease must be > 0, shutdown_grace >= 0", "e.g. 120")
    if s.queue.max_lifetime <= 0 or s.queue.reconcile_after < 0 or s.queue.max_recoveries < 1:
        _fail(
            "[queue] max_lifetime",
            s.queue.max_lifetime,
            "max_lifetime must be > 0, reconcile_after >= 0, max_recoveries >= 1",
            "e.g. max_lifetime = 432000",
        )
    if s.faxplus.webhook_grace <= 0 or s.faxplus.retries < 0:
        _fail(
            "[faxplus] webhook_grace",
            s.faxplus.webhook_grace,
            "must be > 0 (retries >= 0)",
            "e.g. 600",
        )
    if s.faxplus.request_timeout * 2 >= s.queue.lease:
        raise ConfigError(
            f"[faxplus] request_timeout ({s.faxplus.request_timeout:g} s) must be less than "
            f"half of [queue] lease ({s.queue.lease:g} s): a send must end "
            "within its worker's lease, or the job could be taken for lost and faxed twice. "
            "Fix: raise [queue] lease to more than twice request_timeout (e.g. lease = 120 "
            "with request_timeout = 30), or lower request_timeout"
        )
    if s.limits.large_mail_min_rate < 0:
        _fail(
            "[limits] large_mail_min_rate", s.limits.large_mail_min_rate, "negative", "e.g. 20000"
        )
    if s.limits.large_mails_per_client < 1:
        _fail(
            "[limits] large_mails_per_client",
            s.limits.large_mails_per_client,
            "must be at least 1",
            "e.g. 1",
        )
    _validate_extraction_limits(s.limits)
    if s.limits.large_mail_wait <= 0:
        _fail("[limits] large_mail_wait", s.limits.large_mail_wait, "must be > 0", "e.g. 30")
    if s.sandbox.delay < 0:
        _fail("[sandbox] delay", s.sandbox.delay, "must be 0 or more", "e.g. 2")
    try:
        check_fault_settings(s.sandbox)
    except ValueError as exc:
        raise ConfigError(
            f"[sandbox] {exc}. Fix: rates are fractions from 0 (off) to 1; latency and hang are "
            "seconds"
        ) from None
    try:
        parse_variants(s.sandbox.variants)
    except ValueError as exc:
        raise ConfigError(f"[sandbox] variants: {exc}. Fix: name known variants only") from None
    if s.log.level.lower() not in ("debug", "info", "warning", "error"):
        _fail("[log] level", s.log.level, "unknown level", "debug, info, warning or error")
    if s.log.format not in ("text", "json"):
        _fail("[log] format", s.log.format, "unknown format", '"text" or "json"')
    _validate_access(s)


def _validate_extraction_limits(limits: LimitsSettings) -> None:
    if limits.extraction_cpu_seconds < 0:
        _fail(
            "[limits] extraction_cpu_seconds",
            limits.extraction_cpu_seconds,
            "negative",
            "e.g. 30 (0 = no limit)",
        )
    for key in ("extraction_memory", "image_frame_memory", "image_total_memory"):
        value = getattr(limits, key)
        try:
            size = parse_size(value)
        except ValueError:
            _fail(f"[limits] {key}", value, "not a size", 'write e.g. "1GB" or "200MB"')
        if key != "extraction_memory" and size == 0:
            _fail(f"[limits] {key}", value, "must be more than 0", 'e.g. "200MB"')
        if key == "extraction_memory" and 0 < size < 200_000_000:
            # The worker's own libraries and one 30 MB mail's copies need about that much.
            _fail(f"[limits] {key}", value, "too small", 'at least "200MB"; "0" = no limit')


def without_password(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _validate_receipts(receipts: ReceiptsSettings) -> None:
    if receipts.smarthost:
        parts = urlsplit(receipts.smarthost)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname or not port_ok:
            _fail(
                "[receipts] smarthost",
                without_password(receipts.smarthost),
                "not smtp://[USER:PASSWORD@]HOST[:PORT] (or smtps://)",
                '"" for the Maildir, or e.g. "smtp://fax:secret@mail.example.com:587"',
            )
    choices = {"smarthost_starttls": ("auto", "always", "never"), "notify": ("final", "all")}
    for key, allowed in choices.items():
        if getattr(receipts, key) not in allowed:
            _fail(
                f"[receipts] {key}",
                getattr(receipts, key),
                "unknown choice",
                " or ".join(f'"{choice}"' for choice in allowed),
            )
    if receipts.delay_warning <= 0:
        _fail("[receipts] delay_warning", receipts.delay_warning, "must be > 0", "e.g. 14400")
    try:
        SenderPatterns.parse(receipts.no_success_receipts)
    except ValueError as exc:
        _fail(
            "[receipts] no_success_receipts",
            list(receipts.no_success_receipts),
            str(exc),
            '"a@b.c" or "@b.c"',
        )
    if receipts.templates_dir and not Path(receipts.templates_dir).is_dir():
        _fail(
            "[receipts] templates_dir",
            receipts.templates_dir,
            "not a directory",
            '"" for the built-in texts, or a directory of templates (see the README)',
        )


def _validate_access(s: Settings) -> None:
    """The security settings: TLS, who may send, number policy, abuse limits, webhook access."""
    smtp = s.smtp
    if smtp.tls_listen:
        _check_listen("[smtp] tls_listen", smtp.tls_listen)
    if bool(smtp.tls_cert) != bool(smtp.tls_key) or (smtp.tls_listen and not smtp.tls_enabled):
        _fail(
            "[smtp] tls_cert",
            smtp.tls_cert,
            "tls_cert and tls_key go together (and tls_listen needs both)",
            "set both to PEM files, e.g. /etc/mailfax/cert.pem and /etc/mailfax/key.pem",
        )
    for key, cidrs in (
        ("[smtp] trusted_networks", smtp.trusted_networks),
        ("[http] webhook_allowed_networks", s.http.webhook_allowed_networks),
    ):
        try:
            Networks(cidrs)
        except ValueError as exc:
            _fail(key, list(cidrs), str(exc), 'write CIDR networks, e.g. ["10.0.0.0/8"]')
    try:
        SenderPatterns.parse(smtp.allowed_senders)
    except ValueError as exc:
        _fail("[smtp] allowed_senders", list(smtp.allowed_senders), str(exc), '"a@b.c" or "@b.c"')
    if smtp.verify_sender not in VERIFY_SENDER_CHOICES:
        _fail(
            "[smtp] verify_sender",
            smtp.verify_sender,
            "unknown choice",
            " or ".join(f'"{choice}"' for choice in VERIFY_SENDER_CHOICES),
        )
    if smtp.verify_sender == "authentication-results" and not smtp.authserv_id:
        _fail(
            "[smtp] authserv_id",
            "",
            'verify_sender = "authentication-results" trusts only your own server\'s header',
            'set it to the authserv-id your MTA writes, e.g. "mx.example.com"',
        )
    if smtp.dns_timeout <= 0:
        _fail("[smtp] dns_timeout", smtp.dns_timeout, "must be > 0", "e.g. 5")
    for country in s.policy.allowed_countries:
        if country.upper() not in phonenumbers.SUPPORTED_REGIONS:
            _fail("[policy] allowed_countries", country, "not a country code", 'e.g. "US", "DE"')
    for key in ("allowed_prefixes", "blocked_prefixes"):
        for prefix in getattr(s.policy, key):
            if normalise_prefix(prefix) is None:
                _fail(f"[policy] {key}", prefix, "not an E.164 prefix", 'e.g. "+1900" or "+44 9"')
    for number_type in s.policy.refused_types:
        if number_type not in NUMBER_TYPES:
            _fail("[policy] refused_types", number_type, "unknown type", ", ".join(NUMBER_TYPES))
    limits = s.limits
    for key in ("faxes_per_hour", "pages_per_day", "global_faxes_per_hour", "global_pages_per_day"):
        if getattr(limits, key) < 0:
            _fail(f"[limits] {key}", getattr(limits, key), "must be 0 (no limit) or more", "e.g. 1")
    for key in (
        "max_connections",
        "max_connections_per_client",
        "session_deadline",
        "data_deadline",
        "command_call_limit",
    ):
        if getattr(limits, key) <= 0:
            _fail(f"[limits] {key}", getattr(limits, key), "must be > 0", "see the README")
    if s.http.webhook_rate_limit < 0:
        _fail("[http] webhook_rate_limit", s.http.webhook_rate_limit, "negative", "0 = no limit")


def private_dir(path: Path) -> Path:
    """Make `path` and its missing parents, each readable by this user only (0700): the state
    directory holds the store, the webhook secret and the receipts."""
    missing = [directory for directory in (path, *path.parents) if not directory.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)  # mkdir's mode is cut by the umask; this is not
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty as 0600 unless it exists (SQLite gives its -wal and -shm files the
    mode of the database file)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path
