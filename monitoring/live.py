"""Payloads on the "consumers" stream."""

from typing import Literal, NotRequired, TypedDict


class ConsumersEvent(TypedDict):
    type: Literal["consumers"]
    targets: list[int]  # ids of the targets whose status or figures changed in the last pass
    new: NotRequired[list[int]]  # ids of targets first seen in the last pass: appended to open lists
