"""A FAX.PLUS REST API v3 simulator: the gateway's embedded default peer and a test double."""

from mailfax.sandbox.app import DEFAULT_TOKEN, Simulator, SimulatorSettings

__all__ = ["DEFAULT_TOKEN", "Simulator", "SimulatorSettings"]
