"""A demo order saga with failures an operator can act on: some charges fail (the saga compensates), and some
refunds fail too (the saga waits in `compensation_failed` for an operator)."""

import random

from sagas import sdk


class DemoFailure(Exception):
    pass


def reserve_stock(context: dict) -> dict:
    return {"reservation": f"R-{context['order']}"}


def release_stock(context: dict) -> None:
    return None


def charge_card(context: dict) -> dict:
    if context.get("amount", 0) > 900:
        raise DemoFailure(f"card declined for amount {context['amount']}")
    return {"charge": f"C-{context['order']}"}


def refund_card(context: dict) -> None:
    return None


def ship_parcel(context: dict) -> dict:
    if context.get("fragile") and random.random() < 0.5:
        raise DemoFailure("carrier API timed out")
    return {"tracking": f"T-{context['order']}"}


def cancel_shipment(context: dict) -> None:
    return None


def release_stock_flaky(context: dict) -> None:
    # The warehouse system sometimes refuses to release: the compensation fails and needs a person.
    if context.get("amount", 0) % 7 == 0:
        raise DemoFailure("warehouse refused to release the reservation")


ORDER = sdk.define(
    "demo.order",
    [
        sdk.Step("reserve-stock", reserve_stock, release_stock_flaky),
        sdk.Step("charge-card", charge_card, refund_card),
        sdk.Step("ship-parcel", ship_parcel, cancel_shipment),
    ],
)
