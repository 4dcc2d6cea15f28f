"""Per-module mutation scores of the pure core from mutmut's results in mutants/ (make mutate)."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

TARGET = 0.90
SURVIVORS_FILE = Path(__file__).with_name("survivors.md")
PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def modules() -> list[str]:
    """The pure core: [tool.mutmut] only_mutate in pyproject.toml."""
    only_mutate: list[str] = tomllib.loads(PYPROJECT.read_text())["tool"]["mutmut"]["only_mutate"]
    return only_mutate


def statuses(root: Path) -> dict[str, dict[str, str]]:
    """Module -> mutant name -> mutmut's verdict."""
    result: dict[str, dict[str, str]] = {}
    for module in modules():
        meta = root / f"{module}.meta"
        if not meta.exists():
            continue
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        result[module] = {name: _verdict(status_by_exit_code[code]) for name, code in codes.items()}
    return result


def _verdict(status: str) -> str:
    # A mutant that makes the tests run out of time (an endless loop) is one they noticed.
    return "killed" if status == "timeout" else status


def accepted_survivors() -> set[str]:
    """Mutant names listed (the first backquoted word of a "- " line) in the survivors file."""
    names = set()
    for line in SURVIVORS_FILE.read_text().splitlines():
        if line.startswith("- `"):
            names.add(line[3:].split("`", 1)[0])
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("mutants"))
    parser.add_argument("--survivors", action="store_true", help="list unexplained survivors")
    args = parser.parse_args()
    accepted = accepted_survivors()
    header = f"{'module':32} {'mutants':>7} {'killed':>6} {'survived':>8} {'no test':>7} score"
    print(header)
    print("-" * len(header))
    below = []
    unexplained = []
    alive: set[str] = set()
    for module, by_name in statuses(args.root).items():
        counts = Counter(by_name.values())
        total = len(by_name)
        score = counts["killed"] / total if total else 1.0
        print(
            f"{module:32} {total:7} {counts['killed']:6} {counts['survived']:8} "
            f"{counts['no tests']:7} {score:5.1%}"
        )
        if score < TARGET:
            below.append(module)
        alive |= {name for name, status in by_name.items() if status != "killed"}
        unexplained += [n for n, s in by_name.items() if s != "killed" and n not in accepted]
    if below:
        print(f"below {TARGET:.0%}: {', '.join(below)}")
    stale = sorted(accepted - alive)
    if stale:
        print(f"listed in {SURVIVORS_FILE.name} but killed now: {', '.join(stale)}")
    if unexplained:
        print(f"{len(unexplained)} surviving mutants are not explained in {SURVIVORS_FILE.name}")
        if args.survivors:
            print("\n".join(sorted(unexplained)))
    return 1 if below or unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main())
