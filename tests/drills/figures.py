"""The drills' figures: each drill records one row; `make drills` prints them as one table and writes it to
docs/reliability.md (python -m tests.drills.figures).

A drill records only when DRILLS_FIGURES names a file (make drills sets it), so a plain `make test` writes nothing.
Rows are JSON lines; a drill that runs twice (the fast one in the suite, the slow one in bench/drills) has two rows."""

import json
import os
import sys
from pathlib import Path

COLUMNS = [
    ("drill", "drill"),
    ("inputs", "inputs tried"),
    ("http_500", "500s"),
    ("unclear", "unclear rejections"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("cells", "permission cells checked"),
    ("wrong", "wrong"),
    ("restarts", "restarts survived"),
]
# What each column must be for the drill to pass; None: a count, no target.
TARGETS = {"http_500": 0, "unclear": 0, "lost": 0, "wrong": 0}


def record(drill: str, **counts: int) -> None:
    path = os.environ.get("DRILLS_FIGURES")
    if not path:
        return
    unknown = set(counts) - {key for key, _ in COLUMNS}
    if unknown:
        raise ValueError(f"unknown figure(s) {sorted(unknown)}")
    with open(path, "a") as f:
        f.write(json.dumps({"drill": drill, **counts}) + "\n")


def rows(path: str | Path) -> list[dict]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def met(row: dict) -> bool:
    return all(row.get(key, 0) == target for key, target in TARGETS.items())


def table(records: list[dict]) -> str:
    """A Markdown table (readable as plain text too): one row per drill, `–` where a drill does not count that figure,
    and the targets (0 500s, 0 unclear, 0 lost, 0 wrong) checked in the last column."""
    header = [label for _, label in COLUMNS] + ["targets met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in records:
        cells = [str(row["drill"])] + [f"{row[key]:,}" if key in row else "–" for key, _ in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells + ["yes" if met(row) else "**NO**"]) + " |")
    return "\n".join(lines)


REPORT = """# Reliability: the drills' figures

Written by `make drills` ({when}); the fast drills run in the suite (`tests/drills/`), the slow ones in `bench/drills/`.
Targets: 0 answers of 500 (or none), every rejection a 4xx with a clear short message, 0 items lost, 0 permission
cells wrong; duplicates only inside the at-least-once window, marked by their provenance.

{table}

What each drill does: see the module docstrings in `tests/drills/` and `bench/drills/`.
"""


def main(argv: list[str]) -> int:
    from datetime import UTC, datetime

    path, *rest = argv
    records = rows(path)
    if not records:
        print(f"no drill recorded its figures in {path}", file=sys.stderr)
        return 1
    text = table(records)
    print(text)
    if rest:
        Path(rest[0]).write_text(REPORT.format(when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), table=text))
    return 0 if all(met(r) for r in records) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
