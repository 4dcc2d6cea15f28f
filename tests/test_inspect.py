"""`mailfax inspect`: the listener's extraction report for a mail file, without sending."""

from __future__ import annotations

import json
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.cli import main
from tests.pdfs import encrypted_pdf, fax_mail, pdf_with_pages
from tests.test_corpus import corpus_mail


def inspect_json(
    tmp_path: Path, raw: bytes, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, dict[str, object]]:
    mail = tmp_path / "mail.eml"
    mail.write_bytes(raw)
    code = main(["inspect", str(mail), "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def pdf_and_archive() -> EmailMessage:
    return fax_mail(
        attachments=[
            ("invoice.pdf", pdf_with_pages(2), "application/pdf"),
            ("notes.zip", b"PK\x03\x04", "application/zip"),
        ]
    )


def test_accepted_mail_prints_the_report_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = pdf_and_archive()
    config = tmp_path / "mailfax.toml"
    config.write_text('[smtp]\nunfaxable = "fax-the-rest"\n')
    code, report = inspect_json(tmp_path, mail.as_bytes(), capsys, "--config", str(config))
    assert code == 0
    assert report == {
        "recipients": [
            {
                "address": "+17185554567@fax.local",
                "number": "+17185554567",
                "subaddress": "",
                "smtp_reply": "250 2.1.5 Recipient ok: fax to +17185554567",
                "rule": "",
            }
        ],
        "outcome": "accept",
        "smtp_reply": "250 2.0.0 Ok: would queue 1 document, 2 pages, as one fax per recipient",
        "from": "alice@example.com",
        "comment": "Please find the invoice attached.",
        "parts": [
            {
                "name": "invoice.pdf",
                "content_type": "application/pdf",
                "size": len(pdf_with_pages(2)),
                "pages": 2,
                "action": "faxed",
                "reason": "PDF",
                "left_out": False,
            },
            {
                "name": "notes.zip",
                "content_type": "application/zip",
                "size": 4,
                "pages": None,
                "action": "ignored",
                "reason": "archives are not unpacked; attach the documents themselves",
                "left_out": True,
            },
        ],
    }


def test_an_archive_beside_a_pdf_refuses_the_mail_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = pdf_and_archive()
    code, report = inspect_json(tmp_path, mail.as_bytes(), capsys)
    assert (code, report["outcome"]) == (1, "refuse")
    assert report["smtp_reply"] == (
        "550 5.6.0 notes.zip is an archive: attach the documents themselves. Nothing was faxed."
    )
    mail_file = tmp_path / "mail.eml"
    mail_file.write_bytes(mail.as_bytes())
    assert main(["inspect", str(mail_file)]) == 1
    out = capsys.readouterr().out
    assert "archives are not unpacked; attach the documents themselves" in out


def test_refused_mail_exits_non_zero_with_the_smtp_reply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = fax_mail(attachments=[("locked.pdf", encrypted_pdf(), "application/pdf")])
    code, report = inspect_json(tmp_path, mail.as_bytes(), capsys)
    assert code == 1
    assert report["outcome"] == "refuse"
    assert report["smtp_reply"] == (
        "550 5.6.0 The PDF 'locked.pdf' is password-protected; send it without a password."
    )


def test_inspect_obeys_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body_only = fax_mail(body="Please call me back.", attachments=[]).as_bytes()
    code, report = inspect_json(tmp_path, body_only, capsys)
    assert (code, report["outcome"]) == (1, "refuse")
    config = tmp_path / "mailfax.toml"
    config.write_text('[smtp]\nbody_only = "render"\n')
    code, report = inspect_json(tmp_path, body_only, capsys, "--config", str(config))
    assert (code, report["outcome"]) == (0, "accept")
    assert report["parts"] == [
        {
            "name": "mail-text.pdf",
            "content_type": "text/plain",
            "size": len("Please call me back."),
            "pages": 1,
            "action": "converted",
            "reason": "no document attached: the mail's text typeset as the fax ([smtp] body_only)",
            "left_out": False,
        }
    ]


@pytest.mark.corpus
def test_text_output_lists_every_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "apache-poi/quick-winmail.dat"
    mail = tmp_path / "winmail.eml"
    mail.write_bytes(corpus_mail(name))
    config = tmp_path / "mailfax.toml"
    config.write_text('[smtp]\nunfaxable = "fax-the-rest"\n[convert]\noffice = "off"\n')
    assert main(["inspect", "--config", str(config), str(mail)]) == 0
    out = capsys.readouterr().out
    assert "Outcome:  accept" in out
    assert "faxed      quick.pdf  (application/pdf, 18638 bytes, 1 p.)" in out
    assert "left out   quick.doc" in out


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice Example <alice@example.com>", "Alice Example <alice@example.com>"),
        ("=?utf-8?q?J=C3=BCrgen?= <j@example.com>", "Jürgen <j@example.com>"),
    ],
)
def test_the_from_line_shows_the_address_with_or_without_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, shown: str
) -> None:
    mail = tmp_path / "mail.eml"
    mail.write_bytes(fax_mail(sender=header).as_bytes())
    assert main(["inspect", str(mail)]) == 0
    assert f"\nFrom:     {shown}\n" in capsys.readouterr().out


def test_missing_file_and_bad_configuration_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path / "nope.eml")]) == 2
    assert "nope.eml" in capsys.readouterr().err
    config = tmp_path / "bad.toml"
    config.write_text('[convert]\noffice = "yes"\n')
    mail = tmp_path / "m.eml"
    mail.write_bytes(fax_mail().as_bytes())
    assert main(["inspect", str(mail), "--config", str(config)]) == 2
    assert "[convert] office = 'yes'" in capsys.readouterr().err


def test_inspect_reads_stdin_as_a_user_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailfax", "inspect", "-", "--json"],
        input=fax_mail().as_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "accept"
    assert report["parts"][0]["name"] == "invoice.pdf"


# --- recipients: how RCPT TO would read each ----------------------------------------------


def test_recipients_come_from_to_and_cc_in_the_fax_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = fax_mail(to="Front desk <+12125550100@fax.local>, bob@example.com")
    mail["Cc"] = "4930123456@FAX.local"
    code, report = inspect_json(tmp_path, mail.as_bytes(), capsys)
    assert code == 1  # a recipient would be refused
    assert report["outcome"] == "accept"  # the mail itself would be taken
    assert report["recipients"] == [
        {
            "address": "+12125550100@fax.local",
            "number": "+12125550100",
            "subaddress": "",
            "smtp_reply": "250 2.1.5 Recipient ok: fax to +12125550100",
            "rule": "",
        },
        {
            "address": "4930123456@FAX.local",
            "number": "",
            "subaddress": "",
            "smtp_reply": "550 5.1.1 The fax number 4930123456 read as a US number "
            "(+1 493-012-3456) cannot be dialled: +1 493 is not an area code in use; did you "
            "mean +4930123456?",
            "rule": "",
        },
    ]


def test_to_names_recipients_as_written_and_the_operator_sees_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = tmp_path / "mail.eml"
    mail.write_bytes(fax_mail().as_bytes())
    options = ["--to", "(212) 555-0199", "--to", "/FAX=+12125550100/T33S=7/@fax.local"]
    assert main(["inspect", str(mail), *options, "--to", "+19005550100"]) == 1
    out = capsys.readouterr().out
    assert out.split("Recipients:\n")[1] == (
        "  +12125550199   (212) 555-0199@fax.local\n"
        "                 250 2.1.5 Recipient ok: fax to +12125550199\n"
        "  +12125550100   /FAX=+12125550100/T33S=7/@fax.local\n"
        "                 250 2.1.5 Recipient ok: fax to +12125550100\n"
        "                 (T.33 sub-address 7 is not dialled)\n"
        "  refused        +19005550100@fax.local\n"
        "                 550 5.7.1 Fax to +19005550100 refused: it is a premium-rate number\n"
        "                 (rule: [policy] refused_types)\n"
    )


def test_number_check_possible_is_obeyed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mailfax.toml"
    config.write_text('[policy]\nnumber_check = "possible"\n')
    raw = fax_mail(to="+14930123456@fax.local").as_bytes()
    code, report = inspect_json(tmp_path, raw, capsys, "--config", str(config))
    assert code == 0
    recipients = report["recipients"]
    assert isinstance(recipients, list)
    assert [r["number"] for r in recipients] == ["+14930123456"]
