"""Payloads on the "sagas" stream."""

from typing import Literal, TypedDict


class SagaEvent(TypedDict):
    type: Literal["saga"]
    id: str  # the saga whose state or history changed; the consumer re-renders it from the database
