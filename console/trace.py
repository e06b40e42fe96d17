"""Follow one correlation id across the console. "What happened to order ORD-42?" is the on-call question: its saga,
the outbox events it wrote, the dead letters they became and their replays. Each capability adds what it knows with
`register_trace`, as dashboard tiles are added, so the platform does not import the apps."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

# Rows per section: the newest ones. A correlation id that matches more is shown as "more", not paged.
LIMIT = 50


@dataclass
class TraceRow:
    cells: list[str]  # plain text: escaped by the template like any other field
    href: str = ""
    when: datetime | None = None


@dataclass
class TraceSection:
    name: str
    title: str
    columns: list[str]
    rows: list[TraceRow] = field(default_factory=list)
    more: bool = False

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "columns": self.columns,
            "rows": [{"cells": r.cells, "href": r.href or None} for r in self.rows],
            "more": self.more,
        }


TraceSource = Callable[[str, int], TraceSection]
_sources: list[tuple[int, TraceSource]] = []


def register_trace(source: TraceSource, order: int) -> TraceSource:
    """`order` places the section on the page: the order things happen in (saga, outbox, dead letters)."""
    _sources.append((order, source))
    _sources.sort(key=lambda item: item[0])
    return source


def sections(correlation: str, limit: int = LIMIT) -> list[TraceSection]:
    """Each source is asked for up to `limit` + 1 rows, so it can tell whether there are more."""
    found = []
    for _, source in _sources:
        section = source(correlation, limit)
        if len(section.rows) > limit:
            section.rows, section.more = section.rows[:limit], True
        found.append(section)
    return found


def stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"
