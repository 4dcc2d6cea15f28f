"""`mailfax users add|remove|list|passwd`: manage the SMTP accounts in the users file."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailfax.config import load_settings
from mailfax.sender_policy import SenderPatterns
from mailfax.users import (
    LIMIT_OVERRIDES,
    POLICY_OVERRIDES,
    User,
    UsersFileError,
    check_user_name,
    hash_password,
    load_users,
    save_users,
)

MIN_PASSWORD_LENGTH = 8
# What `mailfax users set` changes (addresses and password have their own commands).
SETTABLE = ("success_receipts", *POLICY_OVERRIDES, *LIMIT_OVERRIDES)


def add_users_commands(
    commands: Any, config_option: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add `users` and its actions to the command tree (`commands` is argparse's subparsers)."""
    users = commands.add_parser("users", help="manage SMTP AUTH users and their sender addresses")
    actions = users.add_subparsers(title="users commands", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user allowed to send as the given addresses")
    add.add_argument("name")
    add.add_argument(
        "--address",
        action="append",
        required=True,
        metavar="ADDR",
        help="a sender address (or @domain) of this user; repeatable",
    )
    add.set_defaults(func=_add)
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(func=_remove)
    listing = actions.add_parser("list", help="list users, their addresses and overrides")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=_list)
    setting = actions.add_parser(
        "set",
        help="change a user's settings",
        description=f"Set KEY=VALUE for a user; keys: {', '.join(SETTABLE)}. "
        "Lists are comma-separated; an empty value removes the override.",
    )
    setting.add_argument("name")
    setting.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    setting.set_defaults(func=_set)
    passwd = actions.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.set_defaults(func=_passwd)
    for sub in (add, passwd):
        sub.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    for sub in (add, remove, listing, passwd, setting):
        config_option(sub)


def _users_path(args: argparse.Namespace) -> Path:
    return load_settings(args.config).users_path


def _fail(message: str) -> int:
    print(f"mailfax users: {message}", file=sys.stderr)
    return 1


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("mailfax users: the passwords differ", file=sys.stderr)
            return None
    if len(password) < MIN_PASSWORD_LENGTH:
        print(
            f"mailfax users: the password needs at least {MIN_PASSWORD_LENGTH} characters",
            file=sys.stderr,
        )
        return None
    return password


def _users(args: argparse.Namespace) -> tuple[Path, dict[str, User]]:
    path = _users_path(args)
    return path, load_users(path)


def _existing(users: dict[str, User], name: str, path: Path) -> User:
    user = users.get(name)
    if user is None:
        raise ValueError(f"no user {name} in {path}")
    return user


def _new_password(from_stdin: bool) -> str:
    password = _read_password(from_stdin)
    if password is None:
        raise _Cancelled
    return password


class _Cancelled(Exception):
    """The password was refused; _read_password has said why."""


def _reporting(command: Callable[[argparse.Namespace], None]) -> Callable[..., int]:
    """A command that raises on bad input, as one that prints why and exits 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            command(args)
        except (UsersFileError, ValueError) as exc:
            return _fail(str(exc))
        except _Cancelled:
            return 1
        return 0

    return run


@_reporting
def _add(args: argparse.Namespace) -> None:
    check_user_name(args.name)
    SenderPatterns.parse(args.address)
    path, users = _users(args)
    if args.name in users:
        raise ValueError(
            f"{args.name} exists already (`mailfax users passwd` changes the password)"
        )
    users[args.name] = User(
        args.name, tuple(args.address), hash_password(_new_password(args.password_stdin))
    )
    save_users(path, users)
    print(f"added {args.name} ({', '.join(args.address)}) to {path}")


@_reporting
def _remove(args: argparse.Namespace) -> None:
    path, users = _users(args)
    _existing(users, args.name, path)
    del users[args.name]
    save_users(path, users)
    print(f"removed {args.name} from {path}")


@_reporting
def _list(args: argparse.Namespace) -> None:
    path, users = _users(args)
    if args.json:
        print(json.dumps([_user_json(user) for user in users.values()], indent=2))
        return
    if not users:
        print(f"no users in {path}")
    for user in users.values():
        overrides = [f"{k}={','.join(v)}" for k, v in user.policy.items()]
        overrides += [f"{k}={v}" for k, v in user.limits.items()]
        overrides += [] if user.success_receipts else ["success_receipts=no"]
        extra = f"  ({'; '.join(overrides)})" if overrides else ""
        print(f"{user.name}  {', '.join(user.addresses)}{extra}")


@_reporting
def _passwd(args: argparse.Namespace) -> None:
    path, users = _users(args)
    user = _existing(users, args.name, path)
    password_hash = hash_password(_new_password(args.password_stdin))
    users[args.name] = dataclasses.replace(user, password_hash=password_hash)
    save_users(path, users)
    print(f"password of {args.name} changed")


def _user_json(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "addresses": list(user.addresses),
        "policy": {key: list(value) for key, value in user.policy.items()},
        "limits": dict(user.limits),
        "success_receipts": user.success_receipts,
    }


_YES, _NO = ("yes", "true", "on", "1"), ("no", "false", "off", "0")


def _apply_setting(user: User, assignment: str) -> User:
    """`user` with one KEY=VALUE applied; ValueError names what is wrong and how to write it."""
    key, equals, value = assignment.partition("=")
    key, value = key.strip(), value.strip()
    if not equals:
        raise ValueError(f"{assignment!r} is not KEY=VALUE")
    if key == "success_receipts":
        if value.lower() not in (*_YES, *_NO):
            raise ValueError("success_receipts takes yes or no")
        return dataclasses.replace(user, success_receipts=value.lower() in _YES)
    if key in POLICY_OVERRIDES:
        policy = dict(user.policy)
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if items:
            policy[key] = items
        else:
            policy.pop(key, None)
        return dataclasses.replace(user, policy=policy)
    if key in LIMIT_OVERRIDES:
        limits = dict(user.limits)
        if not value:
            limits.pop(key, None)
        elif value.isdigit():
            limits[key] = int(value)
        else:
            raise ValueError(f"{key} takes a whole number >= 0 (or nothing to remove it)")
        return dataclasses.replace(user, limits=limits)
    raise ValueError(f"unknown setting {key!r}; known: {', '.join(SETTABLE)}")


@_reporting
def _set(args: argparse.Namespace) -> None:
    path, users = _users(args)
    user = _existing(users, args.name, path)
    for assignment in args.settings:
        user = _apply_setting(user, assignment)
    users[args.name] = user
    save_users(path, users)
    print(f"updated {args.name} in {path}")
