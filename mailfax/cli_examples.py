"""An example for every command's --help: one table, attached to the whole parser tree at once."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

# By command path; each line is a command a user can paste (`mailfax` first).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("mailfax serve", "mailfax send --to 17185554567 invoice.pdf", "mailfax doctor"),
    "serve": (
        "mailfax serve                                   # the embedded default, on loopback",
        "mailfax serve --config /etc/mailfax/mailfax.toml --role smtp,web",
    ),
    "db": ("mailfax db upgrade --config mailfax.toml",),
    "db upgrade": ("mailfax db upgrade --config mailfax.toml",),
    "db copy": ("mailfax db copy --to postgresql://mailfax@db/mailfax --config old.toml",),
    "send": (
        "mailfax send --to 17185554567 invoice.pdf",
        'mailfax send --to +4930123456 --to 17185554567 --comment "Signed copy" a.pdf b.pdf',
        'mailfax send --dry-run --to "(212) 555-0199" --to 4930123456   # how numbers are read',
    ),
    "inspect": (
        "mailfax inspect invoice.eml",
        "mailfax inspect --json - < invoice.eml",
        'mailfax inspect --to "(212) 555-0199" invoice.eml',
    ),
    "simulator": (
        "mailfax simulator --listen 127.0.0.1:8081 --delay 2",
        "mailfax simulator --error-rate 0.1 --webhook-duplicate-rate 0.2 --seed 7",
    ),
    "webhooks": ("mailfax webhooks register --config mailfax.toml",),
    "webhooks register": ("mailfax webhooks register --config mailfax.toml",),
    "webhooks list": ("mailfax webhooks list --json --config mailfax.toml",),
    "webhooks delete": ("mailfax webhooks delete 5f3c9a1e --config mailfax.toml",),
    "doctor": (
        "mailfax doctor --config mailfax.toml",
        "mailfax doctor --json",
        "mailfax doctor --config mailfax.toml --live-test +17185554567",
    ),
    "jobs": ("mailfax jobs list --state failed --since 2h",),
    "jobs list": (
        "mailfax jobs list --state failed --since 2h",
        "mailfax jobs list --sender alice@example.com --limit 20 --json",
    ),
    "jobs show": ("mailfax jobs show 19ab0c3f2d1f3e9a8b7c6",),
    "jobs retry": (
        "mailfax jobs retry 19ab0c3f2d1f3e9a8b7c6",
        "mailfax jobs retry 19ab0c3f2d1f3e9a8b7c6 --resend-delivered",
        "mailfax jobs retry 19ab0c3f2d1f3e9a8b7c6 --adopt 66df09cf1d6d0b295c363956",
    ),
    "jobs cancel": ('mailfax jobs cancel 19ab0c3f2d1f3e9a8b7c6 --reason "wrong number"',),
    "users": ("mailfax users add alice --address alice@example.com",),
    "users add": (
        "mailfax users add alice --address alice@example.com --address alice.smith@example.com",
        "mailfax users add scanner --address @scanners.example.com --password-stdin < pw.txt",
    ),
    "users remove": ("mailfax users remove alice",),
    "users list": ("mailfax users list --json",),
    "users set": ("mailfax users set alice success_receipts=no faxes_per_hour=20",),
    "users passwd": ("mailfax users passwd alice",),
    "receipts": ("mailfax receipts preview 19ab0c3f2d1f3e9a8b7c6",),
    "receipts preview": (
        "mailfax receipts preview 19ab0c3f2d1f3e9a8b7c6",
        "mailfax receipts preview 19ab0c3f2d1f3e9a8b7c6 --kind accepted --part html",
    ),
}


def commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the tree with its command path ("" for the top, "jobs retry", ...)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{path} {name}".strip())


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Put each command's examples under its --help; a command missing from EXAMPLES is a bug."""
    for path, command in commands(parser):
        lines = "\n".join(f"  {line}" for line in EXAMPLES[path])
        command.epilog = f"example{'s' if len(EXAMPLES[path]) > 1 else ''}:\n{lines}"
        command.formatter_class = argparse.RawDescriptionHelpFormatter
