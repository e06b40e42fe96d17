"""Payloads on the "sagas" stream."""

from typing import Literal, TypedDict


class SagasChanged(TypedDict):
    """One per recorded batch. The consumer re-reads the sagas from the database and renders them."""

    type: Literal["sagas"]
    ids: list[str]  # sagas whose state or history changed (empty when the batch touched too many to push rows)
    new: list[str]  # those of `ids` seen for the first time: open lists insert them at the top
    more_new: int  # first-seen sagas not sent as rows: open lists show "N new sagas — show"
