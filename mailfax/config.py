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
from mailfax.policy import NUMBER_CHECKS
from mailfax.sandbox.faults import check_fault_settings
from mailfax.sandbox.variants import parse_variants
from mailfax.sender_policy import SenderPatterns

SANDBOX = "sandbox"


class ConfigError(Exception):
    """Invalid configuration; the message names the key, the problem and the fix."""


def _setting(default: Any, doc: str, **metadata: Any) -> Any:
    """A configuration key: its default and its one-line meaning (the manual's reference is
    generated from these; a key without one fails the test suite)."""
    return field(default=default, metadata={"doc": doc, **metadata})


def _secret(doc: str, default: str = "") -> Any:
    """A string setting that may be written `env:NAME` or `file:/path`, and is never shown."""
    return field(default=default, repr=False, metadata={"doc": doc, "secret": True})


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
    """The SMTP listener: where mail comes in, who may send it, and what a mail may hold."""

    listen: str = _setting("127.0.0.1:2525", "HOST:PORT of the SMTP listener (STARTTLS with TLS)")
    domain: str = _setting(
        "fax.local", "the fax domain: mail goes to <fax number>@domain (case-insensitive)"
    )
    default_region: str = _setting(
        "US", "ISO country code for numbers written without a country code"
    )
    max_recipients: int = _setting(10, "recipients (faxes) one mail may have; more get 452 4.5.3")
    max_message_size: str = _setting(
        "30MB", "the largest mail accepted (decimal units KB, MB, GB); larger is 552 5.3.4"
    )
    max_pages: int = _setting(200, "pages one mail may fax in total; more is refused (552 5.3.4)")
    body_only: str = _setting(
        "reject",
        'a mail with no document: "reject" (550 5.6.0), or "render" its text and fax that',
    )
    unfaxable: str = _setting(
        "refuse",
        "a mail with an attachment that cannot be faxed (an archive, a file that fails to "
        'convert): "refuse" it (550 5.6.0 naming the file), or "fax-the-rest" and say in the '
        "receipt what was left out",
    )
    tls_listen: str = _setting(
        "", 'HOST:PORT of a second listener speaking TLS from the first byte (465); "" = none'
    )
    tls_cert: str = _setting(
        "", "PEM certificate chain; with tls_key, listen offers STARTTLS (reloaded on SIGHUP)"
    )
    tls_key: str = _setting("", "PEM private key of tls_cert")
    users_file: str = _setting("", 'the SMTP users (`mailfax users`); "" = <state_dir>/users.toml')
    require_auth: bool | None = _setting(
        None,
        "clients outside trusted_networks must AUTH (530 5.7.0); "
        "unset = on unless every listener is on loopback",
    )
    trusted_networks: tuple[str, ...] = _setting(
        LOOPBACK_NETWORKS,
        "CIDR networks of relays that send without AUTH (an MTA in front, a scanner)",
    )
    allowed_senders: tuple[str, ...] = _setting(
        (), 'addresses or "@domain" a trusted relay may send for; empty = any'
    )
    verify_sender: str = _setting(
        "none",
        'for trusted relays: "none", "authentication-results" (the topmost header from '
        'authserv_id) or "dkim-spf" (mailfax verifies DKIM and SPF itself)',
    )
    authserv_id: str = _setting(
        "", 'your MTA\'s authserv-id, for verify_sender = "authentication-results"'
    )
    dns_resolvers: tuple[str, ...] = _setting(
        (), 'DNS servers ("IP" or "IP:PORT") for dkim-spf; empty = the system resolver'
    )
    dns_timeout: float = _setting(5.0, "seconds per DNS lookup for dkim-spf")

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
    """The HTTP listener: FAX.PLUS's webhooks, health, metrics and the status page."""

    listen: str = _setting("127.0.0.1:8080", "HOST:PORT of the HTTP listener")
    public_url: str = _setting(
        "http://127.0.0.1:8080",
        "the base URL at which FAX.PLUS reaches the listener (for the webhook); "
        '"" = the listener\'s own URL',
    )
    webhook_secret: str = _secret(
        'the secret last segment of the webhook path; "" = generated on first start, kept in '
        "<state_dir>/webhook-secret"
    )
    webhook_allowed_networks: tuple[str, ...] = _setting(
        (), "CIDR client networks that may post webhooks (403 otherwise); empty = any"
    )
    webhook_rate_limit: float = _setting(
        200.0, "webhook requests per second per client address (429 beyond); 0 = no limit"
    )
    admin_token: str = _secret(
        'the token of the status page at / (Bearer header or login form); "" = no status page'
    )


@dataclass(frozen=True)
class FaxplusSettings:
    """The FAX.PLUS API, real or the built-in simulator, and how faxes are sent through it."""

    api_url: str = _setting(
        SANDBOX, '"sandbox" = the built-in simulator; or "https://restapi.fax.plus/v3"'
    )
    token: str = _secret("Personal Access Token for the real API (never logged)")
    from_number: str = _setting(
        "",
        "E.164 sending number, or several comma-separated (FAX.PLUS balances sends over them); "
        '"" = the first active number of the account',
    )
    user_id: str = _setting("self", "the FAX.PLUS user whose outbox sends the faxes")
    request_timeout: float = _setting(
        30.0, "seconds one API call may take in all; must be under half of [queue] lease"
    )
    webhook_grace: float = _setting(
        600.0, "seconds without a result before mailfax polls the fax itself (webhooks may be lost)"
    )
    retries: int = _setting(
        2, "mailfax's own redials after busy, no answer or a result FAX.PLUS calls transient"
    )
    max_comment_chars: int = _setting(
        2000, "the mail's text becomes the fax comment, cut to this length"
    )
    cover_page: str = _setting(
        "never", '"never" or "always": a FAX.PLUS cover page before the documents'
    )


@dataclass(frozen=True)
class StoreSettings:
    """Where the queue and the record live."""

    url: str = _secret(
        '"" = the SQLite file <state_dir>/mailfax.sqlite3; or "postgresql://user:password@host/db"'
    )


@dataclass(frozen=True)
class PolicySettings:
    """Which fax numbers may be dialled; each key can be overridden per user (users file)."""

    allowed_countries: tuple[str, ...] = _setting(
        (), "ISO codes the number's country must be among; empty = every country"
    )
    allowed_prefixes: tuple[str, ...] = _setting(
        (), 'E.164 prefixes a number must start with, e.g. ["+1", "+4930"]; empty = every number'
    )
    blocked_prefixes: tuple[str, ...] = _setting(
        (), 'E.164 prefixes refused, e.g. ["+1900", "+44 9"]'
    )
    refused_types: tuple[str, ...] = _setting(
        ("premium-rate", "shared-cost", "emergency", "short-code"),
        "number types refused (550 5.7.1), among: " + ", ".join(NUMBER_TYPES),
    )
    number_check: str = _setting(
        "valid",
        'which numbers are faxed: "valid" (libphonenumber knows the number to be in use; others '
        'get 550 5.1.1), or "possible" (any number of a possible length, for destinations whose '
        "allocations libphonenumber's data lags)",
    )


@dataclass(frozen=True)
class LimitsSettings:
    """Abuse limits: quotas kept in the store, and caps on SMTP connections."""

    faxes_per_hour: int = _setting(
        100, "faxes per sender (a user, or a relayed envelope sender) per UTC hour; 0 = no limit"
    )
    pages_per_day: int = _setting(2000, "pages per sender per UTC day; 0 = no limit")
    global_faxes_per_hour: int = _setting(0, "faxes of all senders together per hour; 0 = no limit")
    global_pages_per_day: int = _setting(0, "pages of all senders together per day; 0 = no limit")
    max_connections: int = _setting(100, "open SMTP connections (421 4.7.0 beyond)")
    max_connections_per_client: int = _setting(
        10, "open SMTP connections per client address; trusted_networks are exempt"
    )
    session_deadline: float = _setting(900.0, "seconds one SMTP connection may last (421 4.4.2)")
    data_deadline: float = _setting(300.0, "seconds one DATA upload may take (421 4.4.2)")
    command_call_limit: int = _setting(
        100,
        "times one connection may send each command (AUTH: 3); trusted networks count AUTH only",
    )
    large_mail_min_rate: int = _setting(
        20_000,
        "bytes per second a mail past 1 MB must keep arriving at while it holds a large-mail "
        "slot (over 5 s windows), or the connection is closed; 0 = no minimum",
    )
    large_mails_per_client: int = _setting(
        1, "large mails one client address may send or wait to send at once; trusted exempt"
    )
    large_mail_wait: float = _setting(
        30.0, "seconds a large mail waits for a free slot before it is answered 451 4.3.2"
    )
    extraction_cpu_seconds: float = _setting(
        30.0,
        "CPU seconds extracting one mail may take in its worker; over it the mail is refused "
        "552 5.3.4 (too complex to fax); 0 = no limit",
    )
    extraction_memory: str = _setting(
        "1GB", "data memory extracting one mail may use in its worker (552 5.3.4 beyond)"
    )
    image_frame_memory: str = _setting(
        "200MB", "decoded size one image frame may have (checked before decoding)"
    )
    image_total_memory: str = _setting(
        "1GB", "decoded size all frames of one image may have together"
    )


@dataclass(frozen=True)
class ReceiptsSettings:
    """The delivery receipts mailed back to senders."""

    from_address: str = _setting(
        "", 'the receipts\' From address; "" = mailfax@<hostname>', key="from"
    )
    hostname: str = _setting(
        "",
        'the host named in receipts\' Message-ID, Reporting-MTA and footer; "" = the domain '
        "of [receipts] from, else this machine's FQDN (else [smtp] domain: never localhost)",
    )
    smarthost: str = _secret(
        '"" = the Maildir <state_dir>/receipts; or "smtp://[user:password@]host[:port]", '
        '"smtps://..." (TLS at once)'
    )
    smarthost_starttls: str = _setting(
        "auto", 'STARTTLS toward smtp:// smarthosts: "auto" (when offered), "always" or "never"'
    )
    notify: str = _setting(
        "final", '"final": each result; "all": also an "accepted" notice and delay notices'
    )
    delay_warning: float = _setting(
        4 * 3600.0, 'seconds unsent before a delay notice (notify = "all")'
    )
    group: bool = _setting(
        False, "one summary per mail once all its recipients are final, instead of one each"
    )
    attach_report: bool = _setting(
        True, "attach FAX.PLUS's confirmation report (PDF) to receipts of delivered faxes"
    )
    attach_thumbnail: bool = _setting(
        False, "attach a PNG of the first faxed page to result receipts"
    )
    no_success_receipts: tuple[str, ...] = _setting(
        (), 'senders ("a@b.c" or "@b.c") told only of failures'
    )
    templates_dir: str = _setting(
        "", 'a directory of Jinja2 templates replacing the built-in texts; "" = built-in only'
    )


@dataclass(frozen=True)
class QueueSettings:
    """Retries, leases and lifetimes of the durable queue."""

    min_backoff: float = _setting(
        30.0, "seconds: the shortest retry delay (it grows with the job's age, with jitter)"
    )
    max_backoff: float = _setting(3600.0, "seconds: the longest retry delay")
    lease: float = _setting(
        120.0,
        "seconds a worker holds a job or receipt without renewing it (it renews every third) "
        "before another may take it",
    )
    shutdown_grace: float = _setting(10.0, "seconds in-flight work may finish on SIGTERM")
    max_lifetime: float = _setting(
        5 * 24 * 3600.0, "seconds (5 days): a job not final by then fails, and its sender is told"
    )
    reconcile_after: float = _setting(
        60.0, "seconds after a send whose answer was lost before looking it up at FAX.PLUS"
    )
    max_recoveries: int = _setting(
        3, "a job whose worker died this many times is quarantined, and its sender told"
    )


@dataclass(frozen=True)
class ConvertSettings:
    """Documents converted to PDF before faxing."""

    office: str = _setting(
        "auto", '"auto": Office files to PDF when LibreOffice (soffice) is on PATH; "off"'
    )
    timeout: float = _setting(
        120.0,
        "seconds converting one mail's documents may take together (during the SMTP dialogue: "
        "keep it under 5 min)",
    )
    max_parallel: int = _setting(0, "conversions running at once at most; 0 = one per core")
    memory: str = _setting(
        "2GB", "address space one LibreOffice conversion may map (decimal units MB, GB)"
    )


@dataclass(frozen=True)
class SandboxSettings:
    """The built-in FAX.PLUS simulator (api_url = "sandbox"); its faults are all off by default.
    The keys are SimulatorSettings fields of the same name."""

    listen: str = _setting("127.0.0.1:8081", "HOST:PORT of the simulator (the API is under /v3)")
    delay: float = _setting(2.0, "seconds from a send to its fax_sent webhook")
    seed: int = _setting(0, "seeds every fault decision: same seed, same faults")
    error_rate: float = _setting(0.0, "fraction of API calls answered 503 or 500, unprocessed")
    rate_limit_rate: float = _setting(
        0.0, "fraction of API calls answered 429 (Retry-After: 1), unprocessed"
    )
    latency: float = _setting(0.0, "seconds: each API call first waits a random 0..latency")
    timeout_rate: float = _setting(
        0.0, "fraction of API calls processed, then answered only after hang"
    )
    hang: float = _setting(60.0, "seconds a timed-out answer is withheld")
    drop_rate: float = _setting(
        0.0, "fraction of API calls processed, then their connection broken mid-answer"
    )
    webhook_duplicate_rate: float = _setting(
        0.0, "fraction of fax_sent webhooks delivered two or three times"
    )
    webhook_reorder_rate: float = _setting(
        0.0, "fraction of webhooks preceded by a stale, contradicting copy, then delayed"
    )
    webhook_early_rate: float = _setting(
        0.0, "fraction of sends whose webhooks arrive before their 201 answer"
    )
    webhook_drop_rate: float = _setting(0.0, "fraction of fax_sent webhooks never sent")
    webhook_wrong_path_rate: float = _setting(
        0.0, "fraction of webhooks sent to the target with its last path segment altered"
    )
    state_file: str = _setting(
        "", '"" = the ledger in memory; or a JSON file that keeps it across restarts'
    )
    variants: tuple[str, ...] = _setting(
        (),
        "readings of FAX.PLUS other than the default one (`mailfax simulator --help` lists them)",
    )
    credit_pages: int = _setting(
        100, "pages the simulated account may send with the `credit` variant on"
    )


@dataclass(frozen=True)
class LogSettings:
    """Logging: one line per event on standard error, the job id on every line about a job."""

    level: str = _setting("info", "debug, info, warning or error")
    format: str = _setting("text", '"text" (logfmt) or "json"')


@dataclass(frozen=True)
class Settings:
    state_dir: str = _setting(
        "mailfax-data",
        "the SQLite database, the receipts Maildir, generated secrets and the sample PDF",
    )
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


def env_variable(section: str, key: str) -> str:
    """The environment variable that overrides a key: MAILFAX_SMTP_LISTEN for [smtp] listen."""
    return "MAILFAX_" + (f"{section}_{key}" if section else key).upper()


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
        env_name = env_variable(section, key)
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


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(key, value, "unknown choice", " or ".join(f'"{choice}"' for choice in choices))


def _check_size(key: str, value: str, minimum: int, example: str, zero_ok: bool = False) -> None:
    try:
        size = parse_size(value)
    except ValueError:
        _fail(key, value, "not a size", f"write e.g. {example}")
    if size < minimum and not (zero_ok and size == 0):
        _fail(key, value, "too small", f"use e.g. {example}")


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
    _check_size("[smtp] max_message_size", s.smtp.max_message_size, 10_000, '"30MB"')
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
    if s.convert.max_parallel < 0:
        _fail("[convert] max_parallel", s.convert.max_parallel, "negative", "0 (one per core) or 2")
    # LibreOffice aborts at start below ~500 MB of address space; "0" is no limit.
    _check_size("[convert] memory", s.convert.memory, 500_000_000, '"2GB"', zero_ok=True)
    if s.smtp.unfaxable not in ("refuse", "fax-the-rest"):
        _fail("[smtp] unfaxable", s.smtp.unfaxable, "unknown choice", '"refuse" or "fax-the-rest"')
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
            'write e.g. "+16465550001" (or "+16465550001,+16465550002" to let FAX.PLUS '
            'balance sends over both), or "" for the account\'s first active number',
        )
    if s.faxplus.request_timeout <= 0:
        _fail("[faxplus] request_timeout", s.faxplus.request_timeout, "must be > 0", "e.g. 30")
    if s.receipts.from_address:
        try:
            validate_email(s.receipts.from_address, check_deliverability=False)
        except EmailNotValidError as exc:
            _fail("[receipts] from", s.receipts.from_address, str(exc), 'e.g. "fax@example.com"')
    if s.receipts.hostname and (
        not re.fullmatch(r"[A-Za-z0-9.-]+", s.receipts.hostname)
        or s.receipts.hostname.casefold().startswith("localhost")
    ):
        _fail(
            "[receipts] hostname",
            s.receipts.hostname,
            "not a host name senders can tell apart (nor localhost)",
            'write this gateway\'s name, e.g. "fax.example.com", or "" to use [receipts] from\'s '
            "domain",
        )
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
    if s.sandbox.credit_pages < 0:
        _fail("[sandbox] credit_pages", s.sandbox.credit_pages, "must be 0 or more", "e.g. 100")
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
        _check_choice(f"[receipts] {key}", getattr(receipts, key), allowed)
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
            '"" for the built-in texts, or a directory of templates (see docs/receipts.md)',
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
    _check_choice("[smtp] verify_sender", smtp.verify_sender, VERIFY_SENDER_CHOICES)
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
    _check_choice("[policy] number_check", s.policy.number_check, NUMBER_CHECKS)
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
            _fail(f"[limits] {key}", getattr(limits, key), "must be > 0", "see docs/security.md")
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
