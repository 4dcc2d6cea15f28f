"""Keeps the simulator's ledger in a JSON file, replaced atomically, so it survives restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mailfax.sandbox.records import JsonObject


def load_ledger(path: Path) -> list[JsonObject]:
    """The ledger entries saved at `path`; none if there is no file yet."""
    try:
        saved = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    faxes = saved.get("faxes") if isinstance(saved, dict) else None
    if not isinstance(faxes, list):
        raise ValueError(f"{path} is not a sandbox ledger: no 'faxes' list")
    return faxes


def save_ledger(path: Path, faxes: list[JsonObject]) -> None:
    """Replace the file at `path`: tmp file, fsync, rename, fsync dir; a crash leaves old or new."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(json.dumps({"faxes": faxes}, indent=1).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
