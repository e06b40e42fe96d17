"""Payloads on the "dlq" stream."""

from typing import Literal, TypedDict


class DeadLettersEvent(TypedDict):
    type: Literal["dead_letters"]
    ids: list[int]  # new or changed dead letters; the consumer renders them from the database
