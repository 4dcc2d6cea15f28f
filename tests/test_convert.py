"""The LibreOffice converter: real documents to real PDFs; its time, memory and number limits."""

from __future__ import annotations

import fcntl
import io
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pikepdf
import pypdfium2
import pytest

from mailfax.convert import LibreOffice, _slot, converter_for
from mailfax.documents import ConversionError
from mailfax.mail.extract import extract_documents
from mailfax.mail.model import ExtractionOptions
from tests.conftest import wait_until
from tests.office import FORMATS, SOFFICE, office_documents

needs_soffice = pytest.mark.soffice


def converter(soffice: str, workdir: Path, timeout: float = 60.0, parallel: int = 2) -> LibreOffice:
    return LibreOffice(soffice, timeout, 2_000_000_000, parallel, workdir / "convert")


def pdf_text(pdf: bytes) -> str:
    document = pypdfium2.PdfDocument(pdf)
    try:
        return "".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


@needs_soffice
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_each_office_format_becomes_a_pdf_with_its_pages(tmp_path: Path, suffix: str) -> None:
    assert SOFFICE is not None
    name = f"terms.{suffix}"
    pdf = converter(SOFFICE, tmp_path).to_pdf(office_documents()[name], name)
    with pikepdf.open(io.BytesIO(pdf)) as opened:
        assert len(opened.pages) == FORMATS[suffix][1]
    words = {"contract.txt": "Clause two", "sheet.csv": "widgets", "slides.fodp": "Slide two"}
    assert words[FORMATS[suffix][0]] in pdf_text(pdf)


@needs_soffice
def test_a_text_file_becomes_a_pdf_and_a_damaged_document_is_refused(tmp_path: Path) -> None:
    assert SOFFICE is not None
    office = converter(SOFFICE, tmp_path)
    pdf = office.to_pdf("Ünïcode notes\nline two\n".encode(), "document.txt")
    assert "line two" in pdf_text(pdf)
    # The first conversion's profile is the template of the next ones.
    assert (tmp_path / "convert" / "profile-template").is_dir()
    with pytest.raises(ConversionError) as refused:
        office.to_pdf(b"PK\x03\x04 not really a document", "terms.docx")
    assert str(refused.value) == "it is damaged, or not a format LibreOffice can read"


def fake_soffice(tmp_path: Path, body: str) -> str:
    """An executable standing in for soffice: `out` is the PDF it must write, `profile` its
    profile directory; `body` is Python run with both set."""
    script = tmp_path / "fake-soffice"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib, resource, subprocess, sys, time\n"
        "args = sys.argv[1:]\n"
        "source = pathlib.Path(args[-1])\n"
        "out = pathlib.Path(args[args.index('--outdir') + 1]) / (source.stem + '.pdf')\n"
        "[setting] = [a for a in args if a.startswith('-env:UserInstallation=file://')]\n"
        "profile = pathlib.Path(setting.split('file://', 1)[1])\n" + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_a_conversion_over_its_time_is_ended_with_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    soffice = fake_soffice(
        tmp_path,
        # Like soffice, which starts soffice.bin: a helper process that would outlive it.
        f"helper = subprocess.Popen(['sleep', '300'])\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(helper.pid))\n"
        "time.sleep(300)\n",
    )
    with pytest.raises(ConversionError) as refused:
        converter(soffice, tmp_path, timeout=1.0).to_pdf(b"x", "a.docx")
    assert str(refused.value) == "the mail's documents took longer than 1 seconds to convert"
    helper = int(pid_file.read_text())

    def helper_gone() -> bool:
        try:
            state = Path(f"/proc/{helper}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"  # killed, waiting for init to reap it

    wait_until(helper_gone, what="the converter's helper process ends")


def test_the_child_gets_the_memory_cap_and_not_the_workers_limits(tmp_path: Path) -> None:
    soffice = fake_soffice(
        tmp_path,
        "limits = {name: resource.getrlimit(getattr(resource, name))\n"
        "          for name in ('RLIMIT_AS', 'RLIMIT_DATA', 'RLIMIT_CPU')}\n"
        "out.write_text(json.dumps(limits))\n",
    )
    limits = json.loads(converter(soffice, tmp_path).to_pdf(b"x", "a.docx"))
    assert limits["RLIMIT_AS"][0] == 2_000_000_000
    assert limits["RLIMIT_DATA"][0] == limits["RLIMIT_DATA"][1]
    assert limits["RLIMIT_CPU"][0] == limits["RLIMIT_CPU"][1]


def test_each_conversion_starts_from_a_copy_of_the_first_ones_profile(tmp_path: Path) -> None:
    soffice = fake_soffice(
        tmp_path,
        "had = (profile / 'settings.xcu').exists()\n"
        "profile.mkdir(exist_ok=True)\n"
        "(profile / 'settings.xcu').write_text('set up')\n"
        "out.write_text(json.dumps(had))\n",
    )
    office = converter(soffice, tmp_path)
    assert [json.loads(office.to_pdf(b"x", "a.odt")) for _ in range(3)] == [False, True, True]
    # The work files of each conversion are gone; the template and slot locks stay.
    assert sorted(p.name for p in (tmp_path / "convert").iterdir()) == [
        "profile-template",
        "slot-0.lock",
        "slot-1.lock",
    ]


def test_no_more_conversions_at_once_than_the_slots(tmp_path: Path) -> None:
    workdir = tmp_path / "convert"
    workdir.mkdir()

    def held(number: int) -> bool:
        with (workdir / f"slot-{number}.lock").open("ab") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    third_in = threading.Event()

    def third() -> None:
        with _slot(workdir, 2, lambda: 60.0):
            third_in.set()

    with _slot(workdir, 2, lambda: 60.0):
        assert [held(0), held(1)] == [True, False]
        with _slot(workdir, 2, lambda: 60.0):
            assert [held(0), held(1)] == [True, True]
            waiting = threading.Thread(target=third)
            waiting.start()
            assert not third_in.is_set()  # it cannot have a slot while both are held
        # A slot is free again: the waiting conversion takes it.
        wait_until(third_in.is_set, what="the third conversion gets a slot")
    waiting.join()
    assert [held(0), held(1)] == [False, False]


def test_a_work_directory_others_can_read_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "convert").mkdir()
    os.chmod(tmp_path / "convert", 0o740)
    soffice = fake_soffice(tmp_path, "out.write_text('pdf')\n")
    with pytest.raises(ConversionError, match="not private"):
        converter(soffice, tmp_path).to_pdf(b"x", "a.docx")


def test_no_converter_without_libreoffice_and_a_private_default_directory() -> None:
    assert converter_for(ExtractionOptions()) is None
    office = converter_for(ExtractionOptions(soffice="/usr/bin/soffice"))
    assert isinstance(office, LibreOffice)
    assert office.workdir.name == "convert" and str(os.getuid()) in office.workdir.parent.name


@needs_soffice
def test_a_latin_1_text_attachment_is_faxed_with_its_accents(tmp_path: Path) -> None:
    assert SOFFICE is not None
    mail = (
        b"From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
        b"--B\nContent-Type: text/plain\n\nhello\n--B\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b'Content-Disposition: attachment; filename="notes.txt"\n\n'
        + "Gr\u00fc\u00dfe aus M\u00fcnchen\n".encode("latin-1")
        + b"\n--B--\n"
    )
    options = ExtractionOptions(soffice=SOFFICE, convert_dir=str(tmp_path))
    [document] = extract_documents(mail, options).documents
    assert "Gr\u00fc\u00dfe aus M\u00fcnchen" in pdf_text(document.data)


def test_the_default_relative_state_directory_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    soffice = fake_soffice(tmp_path, "out.write_text(str(profile))\n")
    office = converter_for(ExtractionOptions(soffice=soffice, convert_dir="mailfax-data"))
    assert office is not None
    profile = Path(office.to_pdf(b"x", "a.docx").decode())
    assert profile.is_relative_to(tmp_path.resolve() / "mailfax-data" / "convert")


def test_the_time_limit_counts_all_of_one_mails_conversions(tmp_path: Path) -> None:
    soffice = fake_soffice(tmp_path, "time.sleep(2)\nout.write_text('pdf')\n")
    office = converter(soffice, tmp_path, timeout=3.0)  # one converter: one mail
    assert office.to_pdf(b"x", "a.docx") == b"pdf"
    with pytest.raises(ConversionError) as refused:
        office.to_pdf(b"x", "b.docx")  # about 1 s was left: not enough
    assert str(refused.value) == "the mail's documents took longer than 3 seconds to convert"
    # The next mail has its own time.
    assert converter(soffice, tmp_path, timeout=3.0).to_pdf(b"x", "c.docx") == b"pdf"


def test_waiting_for_a_slot_ends_when_the_mails_time_is_up(tmp_path: Path) -> None:
    def time_up() -> float:
        raise ConversionError("the mail's documents took longer than 1 seconds to convert")

    with (
        _slot(tmp_path, 1, lambda: 60.0),
        pytest.raises(ConversionError, match="took longer"),
        _slot(tmp_path, 1, time_up),
    ):
        pytest.fail("the only slot is held: this conversion cannot have started")
