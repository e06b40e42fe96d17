"""Payloads of the "outbox" live stream. The consumer re-renders the backlog from the database on each one."""

from typing import Literal, TypedDict

from console.live import broadcast


class BacklogEvent(TypedDict):
    type: Literal["outbox.backlog"]


def announce_backlog() -> None:
    broadcast("outbox", BacklogEvent(type="outbox.backlog"))
    broadcast("dashboard", {"type": "dashboard", "tile": "outbox-backlog"})
