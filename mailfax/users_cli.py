"""`mailfax users add|remove|list|passwd`: manage the SMTP accounts in the users file."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from mailfax.config import load_settings
from mailfax.sender_policy import SenderPatterns
from mailfax.users import (
    User,
    UsersFileError,
    check_user_name,
    hash_password,
    load_users,
    save_users,
)

MIN_PASSWORD_LENGTH = 8


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
    listing.set_defaults(func=_list)
    passwd = actions.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.set_defaults(func=_passwd)
    for sub in (add, passwd):
        sub.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    for sub in (add, remove, listing, passwd):
        config_option(sub)


def _users_path(args: argparse.Namespace) -> Any:
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


def _add(args: argparse.Namespace) -> int:
    path = _users_path(args)
    try:
        check_user_name(args.name)
        SenderPatterns.parse(args.address)
        users = load_users(path)
    except (UsersFileError, ValueError) as exc:
        return _fail(str(exc))
    if args.name in users:
        return _fail(f"{args.name} exists already (`mailfax users passwd` changes the password)")
    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    users[args.name] = User(args.name, tuple(args.address), hash_password(password))
    save_users(path, users)
    print(f"added {args.name} ({', '.join(args.address)}) to {path}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    path = _users_path(args)
    try:
        users = load_users(path)
    except UsersFileError as exc:
        return _fail(str(exc))
    if users.pop(args.name, None) is None:
        return _fail(f"no user {args.name} in {path}")
    save_users(path, users)
    print(f"removed {args.name} from {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    path = _users_path(args)
    try:
        users = load_users(path)
    except UsersFileError as exc:
        return _fail(str(exc))
    if not users:
        print(f"no users in {path}")
    for user in users.values():
        overrides = [f"{k}={','.join(v)}" for k, v in user.policy.items()]
        overrides += [f"{k}={v}" for k, v in user.limits.items()]
        extra = f"  ({'; '.join(overrides)})" if overrides else ""
        print(f"{user.name}  {', '.join(user.addresses)}{extra}")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    path = _users_path(args)
    try:
        users = load_users(path)
    except UsersFileError as exc:
        return _fail(str(exc))
    user = users.get(args.name)
    if user is None:
        return _fail(f"no user {args.name} in {path}")
    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    users[args.name] = User(
        user.name, user.addresses, hash_password(password), user.policy, user.limits
    )
    save_users(path, users)
    print(f"password of {args.name} changed")
    return 0
