"""The deployment files parse and name only commands and settings that exist."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailfax.app import ROLES
from mailfax.cli import _parser
from mailfax.config import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def config_env_names() -> set[str]:
    """Every MAILFAX_* variable the configuration understands."""
    names = {"MAILFAX_CONFIG"}
    defaults = Settings()
    for section in dataclasses.fields(Settings):
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value):
            names |= {
                f"MAILFAX_{section.name}_{key.metadata.get('key', key.name)}".upper()
                for key in dataclasses.fields(value)
            }
        else:
            names.add(f"MAILFAX_{section.name}".upper())
    return names


def check_command(args: list[str]) -> None:
    """The arguments parse as a mailfax command, with valid roles."""
    parsed = _parser().parse_args(args)
    assert hasattr(parsed, "func"), args
    if getattr(parsed, "role", None):
        assert set(parsed.role.split(",")) <= ROLES


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_file() -> None:
    compose = yaml_documents(DEPLOY / "docker-compose.yml")[0]
    services = compose["services"]
    assert "postgres" in services
    mailfax = {name: s for name, s in services.items() if s.get("build")}
    smtp_instances = [s for s in mailfax.values() if "smtp" in " ".join(s["command"])]
    assert len(smtp_instances) == 2
    known = config_env_names()
    for service in mailfax.values():
        check_command(service["command"])
        assert set(service["environment"]) <= known, set(service["environment"]) - known
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert (context / service["build"]["dockerfile"]).exists()
        assert (context / "pyproject.toml").exists()


def test_kubernetes_manifests() -> None:
    docs = [
        doc
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for doc in yaml_documents(path)
    ]
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Job", "Secret", "Service"]
    known = config_env_names()
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert set(secret["stringData"]) <= known
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    roles = set()
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        spec = doc["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            check_command(container["args"])
            if "--role" in container["args"]:
                roles |= set(container["args"][container["args"].index("--role") + 1].split(","))
            assert {e["name"] for e in container.get("env", [])} <= known
    assert roles == ROLES  # every role is deployed somewhere
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["selector"]["role"] == "front"
    assert config["data"]["mailfax.toml"]


def test_kubernetes_config_is_valid(tmp_path: Path) -> None:
    config = next(
        d
        for d in yaml_documents(DEPLOY / "kubernetes" / "configmap.yaml")
        if d["kind"] == "ConfigMap"
    )
    path = tmp_path / "mailfax.toml"
    path.write_text(config["data"]["mailfax.toml"])
    secret = yaml_documents(DEPLOY / "kubernetes" / "secret.yaml")[0]["stringData"]
    settings = load_settings(path, environ=dict(secret))
    assert settings.store.url.startswith("postgresql://")
    assert not settings.uses_sandbox


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER mailfax$", text, re.M)
    assert "HEALTHCHECK" in text
    assert 'ENTRYPOINT ["mailfax"]' in text and 'CMD ["serve"]' in text
    for env in re.findall(r"(MAILFAX_[A-Z_]+)=", text):
        assert env in config_env_names()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd" / "mailfax.service").read_text()
    mailfax = str(Path(sys.executable).parent / "mailfax")
    assert Path(mailfax).exists(), "the mailfax script is installed"
    # Verify the unit as it would run here (ExecStart must name an existing binary).
    local = tmp_path / "mailfax.service"
    local.write_text(unit.replace("/usr/local/bin/mailfax", mailfax))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for env in re.findall(r"Environment=(MAILFAX_[A-Z_]+)=", unit):
        assert env in config_env_names()
