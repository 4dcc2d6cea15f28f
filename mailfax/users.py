"""The users file: SMTP accounts with their sender addresses, password hashes and overrides."""

from __future__ import annotations

import functools
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailfax.sender_policy import SenderPatterns

# Keys a user entry may carry besides its addresses and password: overrides of the
# [policy] lists and of the per-sender [limits] quotas.
POLICY_OVERRIDES = ("allowed_countries", "allowed_prefixes", "blocked_prefixes", "refused_types")
LIMIT_OVERRIDES = ("faxes_per_hour", "pages_per_day")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_HASHER = PasswordHasher()


class UsersFileError(Exception):
    """The users file cannot be read or is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class User:
    name: str
    addresses: tuple[str, ...]
    password_hash: str = field(repr=False)
    policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    # False: this user hears only of failures (no "delivered" or "accepted" receipts).
    success_receipts: bool = True

    @property
    def senders(self) -> SenderPatterns:
        return SenderPatterns.parse(self.addresses)


def check_user_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise UsersFileError(
            f"{name!r} is not a user name: use letters, digits and . _ @ + - (at most 64)"
        )


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """CPU-bound on purpose (argon2): callers on the event loop run it in a thread."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return hash_password("no such user")


def load_users(path: Path) -> dict[str, User]:
    """Every user in the file; a missing file has none."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsersFileError(f"users file {path}: {exc}") from exc
    entries = data.get("users", {})
    if not isinstance(entries, dict):
        raise UsersFileError(f"users file {path}: [users] must be a table")
    return {name: _user(path, name, entry) for name, entry in entries.items()}


def _user(path: Path, name: str, entry: Any) -> User:
    where = f"users file {path}, [users.{name}]"
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where} must be a table")
    known = {"addresses", "password", "success_receipts", *POLICY_OVERRIDES, *LIMIT_OVERRIDES}
    for key in entry:
        if key not in known:
            raise UsersFileError(f"{where}: unknown key {key!r}; known keys: {', '.join(known)}")
    addresses = entry.get("addresses", [])
    lists = {key: entry[key] for key in ("addresses", *POLICY_OVERRIDES) if key in entry}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsersFileError(f"{where}: {key} must be a list of strings")
    for key in LIMIT_OVERRIDES:
        if key in entry and (not isinstance(entry[key], int) or entry[key] < 0):
            raise UsersFileError(f"{where}: {key} must be a whole number >= 0")
    if not isinstance(entry.get("success_receipts", True), bool):
        raise UsersFileError(f"{where}: success_receipts must be true or false")
    try:
        SenderPatterns.parse(addresses)
    except ValueError as exc:
        raise UsersFileError(f"{where}: addresses: {exc}") from None
    return User(
        name=name,
        addresses=tuple(addresses),
        password_hash=str(entry.get("password", "")),
        policy={key: tuple(entry[key]) for key in POLICY_OVERRIDES if key in entry},
        limits={key: int(entry[key]) for key in LIMIT_OVERRIDES if key in entry},
        success_receipts=entry.get("success_receipts", True),
    )


def save_users(path: Path, users: Mapping[str, User]) -> None:
    """Write atomically, readable by the owner only (it holds password hashes)."""
    document: dict[str, Any] = {"users": {}}
    for name, user in sorted(users.items()):
        entry: dict[str, Any] = {"addresses": list(user.addresses), "password": user.password_hash}
        entry.update({key: list(value) for key, value in user.policy.items()})
        entry.update(user.limits)
        if not user.success_receipts:
            entry["success_receipts"] = False
        document["users"][name] = entry
    header = "# mailfax users: `mailfax users add|remove|list|passwd|set` edit this file.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(header + tomli_w.dumps(document))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class UserDirectory:
    """The users file as the SMTP listener sees it: re-read whenever it changes on disk, so
    `mailfax users` takes effect without a restart. Thread-safe: lookups run off the loop."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def _current(self) -> dict[str, User]:
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._users = load_users(self._path)
                self._stamp = stamp
            return self._users

    def without_success_receipts(self) -> frozenset[str]:
        """Names of the users who opted out of success receipts (none while the file is broken:
        an unwanted success receipt is better than a lost decision)."""
        try:
            users = self._current()
        except UsersFileError:
            return frozenset()
        return frozenset(user.name for user in users.values() if not user.success_receipts)

    def knows(self, name: str) -> bool:
        """Whether `name` is a user's (False while the file is broken)."""
        try:
            return name in self._current()
        except UsersFileError:
            return False

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs. Blocking (argon2): call in a thread."""
        user = self._current().get(name)
        if user is None or not user.password_hash:
            # Same work as for a real user, so timing does not tell which names exist.
            verify_password(_dummy_hash(), password)
            return None
        return user if verify_password(user.password_hash, password) else None
