"""Configuration: embedded default, TOML file, MAILFAX_* overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfax.config import ConfigError, Settings, load_settings, parse_size
from mailfax.config_reference import keys, reference_markdown


def test_no_file_gives_the_embedded_default() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.smtp.listen == "127.0.0.1:2525"
    assert settings.smtp.domain == "fax.local"
    assert settings.smtp.max_message_bytes == 30_000_000
    assert settings.http.public_url == "http://127.0.0.1:8080"
    assert settings.uses_sandbox
    assert settings.sandbox.listen == "127.0.0.1:8081"
    assert settings.sandbox.delay == 2


def test_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "mailfax.toml"
    config.write_text(
        'state_dir = "/var/lib/mailfax"\n[smtp]\nlisten = "0.0.0.0:25"\nmax_recipients = 3\n'
        '[receipts]\nfrom = "fax@example.com"\n'
    )
    settings = load_settings(
        environ={
            "MAILFAX_CONFIG": str(config),
            "MAILFAX_SMTP_LISTEN": "127.0.0.1:2626",
            "MAILFAX_SANDBOX_DELAY": "0",
        }
    )
    assert settings.state_dir == "/var/lib/mailfax"
    assert settings.smtp.listen == "127.0.0.1:2626"  # the environment wins
    assert settings.smtp.max_recipients == 3
    assert settings.receipts.from_address == "fax@example.com"
    assert settings.sandbox.delay == 0.0


def test_top_level_key_from_environment() -> None:
    assert load_settings(environ={"MAILFAX_STATE_DIR": "/tmp/x"}).state_dir == "/tmp/x"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('[smtp]\nlisten = "nowhere"\n', {}, "[smtp] listen = 'nowhere': not a listen address"),
        ('[smtp]\nlisen = "x"\n', {}, "unknown configuration key [smtp] lisen"),
        ('[smtp]\nmax_recipients = "ten"\n', {}, "[smtp] max_recipients"),
        ("", {"MAILFAX_SMTP_MAX_RECIPIENTS": "ten"}, "MAILFAX_SMTP_MAX_RECIPIENTS"),
        ('[smtp]\ndefault_region = "XX"\n', {}, "[smtp] default_region"),
        ('[smtp]\nmax_message_size = "big"\n', {}, "[smtp] max_message_size"),
        (
            '[policy]\nnumber_check = "strict"\n',
            {},
            '[policy] number_check = \'strict\': unknown choice. Fix: "valid" or "possible"',
        ),
        ('[faxplus]\napi_url = "https://restapi.fax.plus/v3"\n', {}, "[faxplus] token"),
        ('[faxplus]\nfrom_number = "555"\n', {}, "[faxplus] from_number"),
        ('[faxplus]\nfrom_number = "+16465550001,555"\n', {}, "[faxplus] from_number"),
        ('[receipts]\nsmarthost = "mail.example.com"\n', {}, "[receipts] smarthost"),
        ('[receipts]\nfrom = "not an address"\n', {}, "[receipts] from"),
        ("smtp = 3\n", {}, "smtp must be a table"),
        ("[smtp\n", {}, "not valid TOML"),
    ],
)
def test_invalid_configuration_names_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "mailfax.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=env)
    assert message in str(caught.value)


def test_did_you_mean(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[smtp]\nlisen = "x"\n')
    with pytest.raises(ConfigError, match="did you mean 'listen'"):
        load_settings(config, environ={})


def test_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/mailfax.toml", environ={})


def test_token_is_not_in_repr() -> None:
    settings = load_settings(
        environ={
            "MAILFAX_FAXPLUS_API_URL": "https://restapi.fax.plus/v3",
            "MAILFAX_FAXPLUS_TOKEN": "alohi_pat_SECRET",
        }
    )
    assert settings.faxplus.token == "alohi_pat_SECRET"
    assert "SECRET" not in repr(settings)


def test_sizes() -> None:
    assert parse_size("30MB") == 30_000_000
    assert parse_size("500 KB") == 500_000
    assert parse_size("1g") == 1_000_000_000
    assert parse_size("1234") == 1234


def test_simulator_variants_are_read_and_checked() -> None:
    settings = load_settings(environ={"MAILFAX_SANDBOX_VARIANTS": "no-comment,upload-names"})
    assert settings.sandbox.variants == ("no-comment", "upload-names")
    with pytest.raises(ConfigError, match=r"\[sandbox\] variants: unknown simulator variant"):
        load_settings(environ={"MAILFAX_SANDBOX_VARIANTS": "no-comment,sorted"})


def test_a_request_that_could_outlast_its_lease_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"MAILFAX_QUEUE_LEASE": "5"})
    message = str(raised.value)
    assert "[faxplus] request_timeout (30 s)" in message and "[queue] lease (5 s)" in message
    assert "Fix: raise [queue] lease" in message
    settings = load_settings(
        environ={"MAILFAX_QUEUE_LEASE": "5", "MAILFAX_FAXPLUS_REQUEST_TIMEOUT": "2"}
    )
    assert settings.queue.lease == 5.0


def test_every_key_has_a_description_for_the_generated_reference() -> None:
    """The manual's configuration reference is generated from the settings' definitions."""
    references = keys()
    assert [f"[{r.section}] {r.key}" for r in references if not r.doc.strip()] == []
    assert [f"[{r.section}] {r.key}" for r in references if r.doc.rstrip().endswith(".")] == []
    reference = reference_markdown()
    for ref in references:
        assert f"| `{ref.key}` | {ref.kind} | `{ref.default}` |" in reference
    by_name = {(r.section, r.key): r for r in references}
    # What the reference says is what loading does: the name, the default, the variable.
    receipts_from = by_name[("receipts", "from")]
    assert (receipts_from.default, receipts_from.env) == ('""', "MAILFAX_RECEIPTS_FROM")
    loaded = load_settings(environ={receipts_from.env: "fax@example.com"})
    assert loaded.receipts.from_address == "fax@example.com"
    assert by_name[("queue", "max_lifetime")].default == "432000"
    assert by_name[("smtp", "trusted_networks")].default == '["127.0.0.0/8", "::1/128"]'
    assert by_name[("faxplus", "token")].secret and "never logged" in reference
