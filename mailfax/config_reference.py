"""Renders the configuration reference (Markdown) from the settings' own definitions."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailfax.config import Settings, env_variable


@dataclass(frozen=True)
class KeyReference:
    section: str  # "" for the top-level keys
    key: str
    kind: str
    default: str
    env: str
    doc: str
    secret: bool


def _kind(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return f"{_kind(next(t for t in typing.get_args(hint) if t is not type(None)))} or unset"
    if typing.get_origin(hint) is tuple:
        return "list of strings"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]


def _toml(value: Any) -> str:
    """The default as it is written in the TOML file."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


def _sections() -> Iterator[tuple[str, type[Any]]]:
    yield "", Settings
    hints = typing.get_type_hints(Settings)
    for fld in dataclasses.fields(Settings):
        if dataclasses.is_dataclass(hints[fld.name]):
            yield fld.name, hints[fld.name]


def keys() -> list[KeyReference]:
    """Every configuration key in file order, with its type, default and meaning."""
    found = []
    for section, cls in _sections():
        hints = typing.get_type_hints(cls)
        defaults = cls()
        for fld in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[fld.name]):
                continue
            key = fld.metadata.get("key", fld.name)
            found.append(
                KeyReference(
                    section,
                    key,
                    _kind(hints[fld.name]),
                    _toml(getattr(defaults, fld.name)),
                    env_variable(section, key),
                    fld.metadata.get("doc", ""),
                    bool(fld.metadata.get("secret")),
                )
            )
    return found


def _cell(text: str) -> str:
    """Table-safe: a pipe would end the cell, and <state_dir> would be taken for HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def reference_markdown() -> str:
    """One table per section; the manual includes it (generated on every docs build)."""
    lines: list[str] = []
    for section, cls in _sections():
        lines += ["", f"## `[{section}]`" if section else "## Top-level keys", ""]
        intro = (cls.__doc__ or "").strip() if section else ""
        if intro:
            lines += [" ".join(intro.split()), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for ref in (ref for ref in keys() if ref.section == section):
            secret = " May be written `env:NAME` or `file:/path`; never logged." * ref.secret
            lines.append(
                f"| `{ref.key}` | {ref.kind} | `{_cell(ref.default)}` | {_cell(ref.doc)}."
                f"{secret} Environment: `{ref.env}` |"
            )
    return "\n".join(lines).lstrip() + "\n"
