"""Loads one validated Settings object from a TOML file plus MAILFAX_* environment overrides."""

from __future__ import annotations

import dataclasses
import difflib
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
from mailfax.sandbox.faults import check_fault_settings

SANDBOX = "sandbox"


class ConfigError(Exception):
    """Invalid configuration; the message names the key, the problem and the fix."""


def _key(name: str) -> dict[str, str]:
    """Field metadata for a TOML key that is not a valid Python name."""
    return {"key": name}


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

    @property
    def max_message_bytes(self) -> int:
        return parse_size(self.max_message_size)


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:8080"
    # "" derives the URL from the HTTP listener's actual address.
    public_url: str = "http://127.0.0.1:8080"
    # "" generates a secret on first start and keeps it in state_dir.
    webhook_secret: str = ""


@dataclass(frozen=True)
class FaxplusSettings:
    api_url: str = SANDBOX
    token: str = dataclasses.field(default="", repr=False)
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
    url: str = ""


@dataclass(frozen=True)
class ReceiptsSettings:
    from_address: str = field(default="", metadata=_key("from"))
    smarthost: str = ""


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
    return cls(**values)


_ENV_BOOL = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _coerce(kind: Any, value: Any, label: str, from_env: bool) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
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
    if s.faxplus.from_number and not re.fullmatch(r"\+[0-9]{8,}", s.faxplus.from_number):
        _fail(
            "[faxplus] from_number",
            s.faxplus.from_number,
            "not an E.164 number",
            'write e.g. "+15550000001", or "" for the account\'s first active number',
        )
    if s.faxplus.request_timeout <= 0:
        _fail("[faxplus] request_timeout", s.faxplus.request_timeout, "must be > 0", "e.g. 30")
    if s.receipts.from_address:
        try:
            validate_email(s.receipts.from_address, check_deliverability=False)
        except EmailNotValidError as exc:
            _fail("[receipts] from", s.receipts.from_address, str(exc), 'e.g. "fax@example.com"')
    if s.receipts.smarthost:
        parts = urlsplit(s.receipts.smarthost)
        if parts.scheme != "smtp" or not parts.hostname:
            _fail(
                "[receipts] smarthost",
                s.receipts.smarthost,
                "not smtp://HOST:PORT",
                '"" or smtp://127.0.0.1:25',
            )
    if s.store.url and not s.store.url.startswith(("sqlite", "postgresql")):
        _fail("[store] url", s.store.url, "unsupported database", '"" for SQLite in state_dir')
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
    if s.sandbox.delay < 0:
        _fail("[sandbox] delay", s.sandbox.delay, "must be 0 or more", "e.g. 2")
    try:
        check_fault_settings(s.sandbox)
    except ValueError as exc:
        raise ConfigError(
            f"[sandbox] {exc}. Fix: rates are fractions from 0 (off) to 1; latency and hang are "
            "seconds"
        ) from None
    if s.log.level.lower() not in ("debug", "info", "warning", "error"):
        _fail("[log] level", s.log.level, "unknown level", "debug, info, warning or error")
    if s.log.format not in ("text", "json"):
        _fail("[log] format", s.log.format, "unknown format", '"text" or "json"')
