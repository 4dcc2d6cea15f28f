"""The pure access rules (numbers, senders, Authentication-Results, quotas), the users file
and `mailfax users`, secrets in the configuration, and quota counters in both stores."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from mailfax.config import ConfigError, load_settings
from mailfax.mail.model import Document, PartReport
from mailfax.number_policy import NumberPolicy, number_kinds, prefix_kinds
from mailfax.quotas import DAY, HOUR, QuotaExceeded, QuotaLimits, quota_charges
from mailfax.sender_policy import SenderPatterns, aligned, authentication_results_verdict
from mailfax.store import AcceptedMessage, SqlStore
from mailfax.users import UserDirectory, load_users

MAILFAX = [sys.executable, "-m", "mailfax"]


# --- number policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "kinds"),
    [
        ("+19005550100", {"premium-rate"}),
        ("+49112", {"emergency", "short-code"}),
        ("+4911833", {"short-code"}),
        ("+17185554567", set()),  # the fictional 555 exchange the tests fax to
    ],
)
def test_number_kinds(number: str, kinds: set[str]) -> None:
    assert number_kinds(number) == kinds


# Premium-rate numbers with a digit more or less: libphonenumber finds them invalid (no type).
PREMIUM_BY_PREFIX = (
    "+4990012345670",
    "+4390012345",
    "+44901234567",
    "+61190012345",
    "+32900123450",
    "+19000550100",
)


@pytest.mark.parametrize("number", PREMIUM_BY_PREFIX)
def test_an_invalid_number_is_typed_by_its_prefix(number: str) -> None:
    assert number_kinds(number) == set()
    assert prefix_kinds(number) == {"premium-rate"}
    refusal = NumberPolicy.from_lists({"refused_types": ("premium-rate",)}).refusal(number)
    assert refusal is not None and refusal.text == (
        f"Fax to {number} refused: it is not a valid number and starts like a premium-rate number"
    )
    assert refusal.rule == "[policy] refused_types"
    assert NumberPolicy.from_lists({"refused_types": ("toll-free",)}).refusal(number) is None


@pytest.mark.parametrize(
    "number",
    # Valid numbers keep their own type; the fictional 555 exchange and mistyped ordinary numbers
    # start like no special type.
    ["+4930123456", "+17185554567", "+19005550100", "+4930123456789012", "+4412345"],
)
def test_prefix_rules_leave_other_numbers_alone(number: str) -> None:
    assert prefix_kinds(number) == set()


def test_number_policy_rules_and_their_names() -> None:
    policy = NumberPolicy.from_lists(
        {
            "allowed_countries": ("us", "DE"),
            "blocked_prefixes": ("+1 900",),
            "allowed_prefixes": (),
            "refused_types": ("premium-rate",),
        }
    )
    assert policy.refusal("+17185554567") is None
    blocked = policy.refusal("+19005550100")
    assert blocked is not None and blocked.smtp_reply == (
        "550 5.7.1 Fax to +19005550100 refused: +1900 is a blocked prefix"
    )
    assert blocked.rule == "[policy] blocked_prefixes"
    foreign = policy.refusal("+33142000000")
    assert foreign is not None and "FR is not an allowed country" in foreign.text
    only = NumberPolicy.from_lists({"allowed_prefixes": ("+4930",)}, source="user bob")
    refused = only.refusal("+4989123456")
    assert refused is not None and refused.rule == "allowed_prefixes of user bob"
    assert only.refusal("+4930123456") is None


# --- sender policy ---------------------------------------------------------------------


def test_sender_patterns() -> None:
    patterns = SenderPatterns.parse(["alice@example.com", "@Office.Example"])
    assert patterns.allows("Alice@EXAMPLE.COM")
    assert patterns.allows("scanner@office.example")
    assert not patterns.allows("alice@sub.office.example")
    assert not patterns.allows("not an address")
    with pytest.raises(ValueError, match="not an e-mail address or @domain"):
        SenderPatterns.parse(["alice"])


def test_alignment_never_on_a_bare_tld() -> None:
    assert aligned("example.com", "example.com")
    assert aligned("mail.example.com", "example.com")
    assert not aligned("com", "example.com")
    assert not aligned("example.org", "example.com")


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        (["mx.example.net; dmarc=pass header.from=example.com"], None),
        (["mx.example.net; dkim=pass (good) header.d=example.com; spf=fail"], None),
        (["mx.example.net; spf=pass smtp.mailfrom=bounce@mail.example.com"], None),
        (["MX.example.net 1; dkim=pass header.d=other.org"], "neither DKIM nor SPF"),
        # A DMARC fail is decisive even with an aligned DKIM pass beside it.
        (["mx.example.net; dkim=pass header.d=example.com; dmarc=fail"], "DMARC fail"),
        # The forger's own "pass" below the relay's header is never read.
        (
            ["mx.example.net; dmarc=fail", "mx.example.net; dmarc=pass"],
            "DMARC fail",
        ),
        (["evil.example; dmarc=pass"], "topmost Authentication-Results header is not from"),
        ([], "no Authentication-Results header"),
    ],
)
def test_authentication_results(headers: list[str], verdict: str | None) -> None:
    found = authentication_results_verdict(headers, "mx.example.net", "example.com")
    if verdict is None:
        assert found is None
    else:
        assert found is not None and verdict in found


# --- quotas ----------------------------------------------------------------------------


def test_quota_windows_and_reply() -> None:
    limits = QuotaLimits(faxes_per_hour=5, pages_per_day=0, global_faxes_per_hour=0,
                         global_pages_per_day=100)  # fmt: skip
    now = 1_700_000_123.0
    hourly, daily = quota_charges("user:alice", 2, 3, limits, now)
    assert (hourly.counter, hourly.key, hourly.amount) == ("faxes-per-hour", "user:alice", 2)
    assert hourly.window_start == now - now % HOUR
    assert (daily.key, daily.amount, daily.window_start) == ("*", 6, now - now % DAY)
    assert QuotaExceeded(hourly).smtp_reply == (
        "450 4.7.1 Quota exceeded: at most 5 faxes per hour for this sender; "
        "try again after 2023-11-14 23:00:00 UTC"
    )


def accepted(message_id: str, charges: tuple[object, ...]) -> AcceptedMessage:
    return AcceptedMessage(
        id=message_id,
        received_at=1000.0,
        mail_from="alice@example.com",
        peer="127.0.0.1",
        header_message_id="",
        subject="",
        auto_submitted="",
        comment="",
        report=(PartReport("a.pdf", "application/pdf", 10, 2, "faxed", "PDF"),),
        documents=(Document("a.pdf", b"%PDF-a", 2),),
        raw=b"Subject: x\r\n\r\n",
        admitted_by="user:alice",
        quota_charges=charges,  # type: ignore[arg-type]
    )


async def test_quota_counters_are_one_conditional_upsert_per_counter(store: SqlStore) -> None:
    charges = quota_charges("user:alice", 1, 2, QuotaLimits(3, 5, 0, 0), 1000.0)
    await store.accept(accepted("m1", charges), [("j1", "+17185554567")])
    await store.accept(accepted("m2", charges), [("j2", "+17185554567")])
    # The third mail fits the hourly count (3 of 3) but not the daily pages (6 of 5):
    # refused, nothing stored, and the fax it counted first is given back.
    with pytest.raises(QuotaExceeded) as over:
        await store.accept(accepted("m3", charges), [("j3", "+17185554567")])
    assert over.value.charge.counter == "pages-per-day"
    assert await store.message("m3") is None and await store.get_job("j3") is None
    faxes_only = quota_charges("user:alice", 1, 2, QuotaLimits(3, 0, 0, 0), 1000.0)
    await store.accept(accepted("m4", faxes_only), [("j4", "+17185554567")])
    # Concurrent mails share one group commit; exactly the ones that fit get in.
    pages_only = quota_charges("user:bob", 1, 2, QuotaLimits(0, 5, 0, 0), 1000.0)
    results = await asyncio.gather(
        *(
            store.accept(accepted(f"b{i}", pages_only), [(f"k{i}", "+17185554567")])
            for i in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 2
    assert all(isinstance(r, QuotaExceeded) for r in results if r is not None)
    # The batch is written with one statement per table: only the mails that fit are in it.
    for i, result in enumerate(results):
        stored = await store.message(f"b{i}"), await store.get_job(f"k{i}")
        assert all(stored) if result is None else stored == (None, None)
    message = await store.message("m1")
    assert message is not None and message.admitted_by == "user:alice"


# --- users file and `mailfax users` ------------------------------------------------------


async def run_users(tmp_path: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *MAILFAX,
        "users",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MAILFAX_STATE_DIR": str(tmp_path)},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_users_commands(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    code, out, _ = await run_users(
        tmp_path,
        "add",
        "alice",
        "--address",
        "alice@example.com",
        "--address",
        "@office.example",
        "--password-stdin",
        stdin="s3cret-pass\n",
    )
    assert code == 0 and "added alice" in out
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "s3cret" not in path.read_text()
    directory = UserDirectory(path)
    user = directory.authenticate("alice", "s3cret-pass")
    assert user is not None and user.addresses == ("alice@example.com", "@office.example")
    assert directory.authenticate("alice", "wrong") is None
    assert directory.authenticate("nobody", "s3cret-pass") is None

    code, _, err = await run_users(tmp_path, "add", "alice", "--address", "a@b.example",
                                   "--password-stdin", stdin="another-pass\n")  # fmt: skip
    assert code == 1 and "exists already" in err
    code, _, err = await run_users(tmp_path, "add", "bob", "--address", "nope",
                                   "--password-stdin", stdin="long-enough\n")  # fmt: skip
    assert code == 1 and "not an e-mail address" in err
    code, _, err = await run_users(tmp_path, "passwd", "alice", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 8" in err

    # A hand-added override survives the next rewrite.
    path.write_text(path.read_text() + "faxes_per_hour = 3\n")
    code, _, _ = await run_users(tmp_path, "passwd", "alice", "--password-stdin",
                                 stdin="new-password\n")  # fmt: skip
    assert code == 0
    assert directory.authenticate("alice", "new-password") is not None
    assert load_users(path)["alice"].limits == {"faxes_per_hour": 3}
    code, out, _ = await run_users(tmp_path, "list")
    assert out.strip() == "alice  alice@example.com, @office.example  (faxes_per_hour=3)"

    code, out, _ = await run_users(tmp_path, "set", "alice", "success_receipts=no",
                                   "allowed_countries=US, CA", "faxes_per_hour=")  # fmt: skip
    assert code == 0 and "updated alice" in out
    alice = load_users(path)["alice"]
    assert not alice.success_receipts and alice.limits == {}
    assert alice.policy == {"allowed_countries": ("US", "CA")}
    assert directory.without_success_receipts() == {"alice"}
    assert directory.authenticate("alice", "new-password") is not None  # password kept
    code, _, _ = await run_users(tmp_path, "passwd", "alice", "--password-stdin",
                                 stdin="third-password\n")  # fmt: skip
    assert code == 0 and not load_users(path)["alice"].success_receipts  # settings kept
    assert directory.authenticate("alice", "third-password") is not None
    code, out, _ = await run_users(tmp_path, "list", "--json")
    assert json.loads(out) == [
        {
            "name": "alice",
            "addresses": ["alice@example.com", "@office.example"],
            "policy": {"allowed_countries": ["US", "CA"]},
            "limits": {},
            "success_receipts": False,
        }
    ]
    for bad, complaint in [
        ("success_receipts=maybe", "takes yes or no"),
        ("pages_per_day=-1", "whole number"),
        ("colour=blue", "unknown setting 'colour'"),
        ("faxes_per_hour", "is not KEY=VALUE"),
    ]:
        code, _, err = await run_users(tmp_path, "set", "alice", bad)
        assert code == 1 and complaint in err, err
    code, _, err = await run_users(tmp_path, "set", "nobody", "success_receipts=no")
    assert code == 1 and "no user nobody" in err

    code, out, _ = await run_users(tmp_path, "remove", "alice")
    assert code == 0 and load_users(path) == {}


# --- configuration -----------------------------------------------------------------------


def test_secrets_from_environment_and_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("alohi_pat_from_file\n")
    config = tmp_path / "mailfax.toml"
    config.write_text(
        '[faxplus]\napi_url = "https://restapi.fax.plus/v3"\n'
        f'token = "file:{secret_file}"\n'
        '[http]\nwebhook_secret = "env:HOOK_SECRET"\n'
    )
    settings = load_settings(config, environ={"HOOK_SECRET": "from-env"})
    assert settings.faxplus.token == "alohi_pat_from_file"
    assert settings.http.webhook_secret == "from-env"
    assert "alohi_pat" not in repr(settings) and "from-env" not in repr(settings)
    with pytest.raises(ConfigError, match=r"\$HOOK_SECRET is not set"):
        load_settings(config, environ={})


def test_security_defaults_follow_the_listener() -> None:
    embedded = load_settings(environ={})
    assert not embedded.smtp.auth_required and not embedded.smtp.tls_enabled
    assert embedded.smtp.trusted_networks == ("127.0.0.0/8", "::1/128")
    exposed = load_settings(environ={"MAILFAX_SMTP_LISTEN": "0.0.0.0:587"})
    assert exposed.smtp.auth_required
    listed = load_settings(environ={"MAILFAX_SMTP_TRUSTED_NETWORKS": "10.0.0.0/8, 192.0.2.1"})
    assert listed.smtp.trusted_networks == ("10.0.0.0/8", "192.0.2.1")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[smtp]\ntrusted_networks = ["nowhere"]\n', "[smtp] trusted_networks"),
        ('[smtp]\ntrusted_networks = "10.0.0.0/8"\n', "must be a list of strings"),
        ('[smtp]\ntls_cert = "c.pem"\n', "tls_cert and tls_key go together"),
        ('[smtp]\nverify_sender = "authentication-results"\n', "[smtp] authserv_id"),
        ('[smtp]\nallowed_senders = ["bob"]\n', "[smtp] allowed_senders"),
        ('[policy]\nblocked_prefixes = ["1900"]\n', "not an E.164 prefix"),
        ('[policy]\nrefused_types = ["expensive"]\n', "[policy] refused_types"),
        ("[limits]\nmax_connections = 0\n", "[limits] max_connections"),
        ('[http]\nwebhook_allowed_networks = ["x"]\n', "[http] webhook_allowed_networks"),
    ],
)
def test_invalid_security_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "mailfax.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert message in str(caught.value)
