"""Pure: the simulator's variants, each a reading of FAX.PLUS that its documentation allows.

The default simulator is one reading of the published API; where the docs and the SDK leave a
behaviour open, a variant makes the simulator behave the other allowed way, so that mailfax's
guarantees are tested against each and never rest on what only the simulator promises."""

from __future__ import annotations

from collections.abc import Iterable

ALL = "all"

# Name -> the documentation's words that allow it (shown by `mailfax simulator --help`).
VARIANTS: dict[str, str] = {
    "no-comment": (
        "fax records start with an empty comment: the SDK's Fax.comment is a string the "
        "account can edit (PUT /faxes/{id}); nothing says the send's comment.text is kept there"
    ),
    "upload-names": (
        "a fax record's file_name is the name the first document was uploaded under; the docs' "
        'examples show a generated one ("fax-to-1334304xxxx"), which is the default'
    ),
}


def parse_variants(names: Iterable[str]) -> frozenset[str]:
    """The variants named (`all` = every one); ValueError naming an unknown one."""
    chosen: set[str] = set()
    for raw in names:
        for name in (part.strip() for part in raw.split(",")):
            if name == ALL:
                chosen.update(VARIANTS)
            elif name in VARIANTS:
                chosen.add(name)
            elif name:
                known = ", ".join([*VARIANTS, ALL])
                raise ValueError(f"unknown simulator variant {name!r} (known: {known})")
    return frozenset(chosen)
