"""A FAX.PLUS REST API v3 simulator: the gateway's embedded default peer and a test double."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

DEFAULT_TOKEN = "sandbox"  # noqa: S105 - a public, well-known token for a local simulator

if TYPE_CHECKING:
    from mailfax.sandbox.app import Simulator, SimulatorSettings

__all__ = ["DEFAULT_TOKEN", "Simulator", "SimulatorSettings"]


def __getattr__(name: str) -> Any:
    # The simulator is imported when first used: it brings pikepdf and its web app (~10 MiB),
    # which a gateway working against FAX.PLUS itself never needs.
    if name in ("Simulator", "SimulatorSettings"):
        from mailfax.sandbox import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
