"""console.leases: a free lease goes to one holder only, shares balance between live processes, and a dead holder's
share moves to the others once its leases expire."""

import threading
import time

import pytest
from django.db import connection

from console import leases
from console.leases import Share

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_gives_a_free_lease_to_exactly_one_of_many_claiming_at_once():
    names = [f"piece:{n}" for n in range(20)]
    won: dict[str, list[str]] = {}
    start = threading.Barrier(8)

    def contender(n: int) -> None:
        start.wait()
        won[f"h{n}"] = leases.claim(names, f"h{n}", ttl=30, limit=len(names))
        connection.close()

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    taken = [name for got in won.values() for name in got]
    assert sorted(taken) == sorted(names)  # every piece to someone, none to two


def test_it_balances_a_share_and_moves_a_dead_holders_pieces():
    lost: list[str] = []
    a = Share("test-share", ttl=2, holder="host:1:a")
    b = Share("test-share", ttl=2, holder="host:2:b", on_lost=lost.append)
    items = [str(n) for n in range(6)]
    a.tick(items)
    assert a.current() == set(items)  # alone: everything
    b.tick(items)  # b joins: a's share is now 3, but a has not let go yet
    a.tick(items)
    b.tick(items)
    assert len(a.current()) == 3 and len(b.current()) == 3 and not a.current() & b.current()

    # a dies (stops renewing): after its lease period b takes its pieces over.
    time.sleep(2.1)
    b.tick(items)
    assert b.current() == set(items) and lost == []
    # a comes back from a long pause: the pieces it had are b's now; it lets them go and holds nothing...
    had, gone = a.mine, []
    a.on_lost = gone.append
    a.tick(items)
    assert set(gone) == had and a.current() == set()
    # ...until b, seeing two members again, hands back half, and a claims them.
    b.tick(items)
    a.tick(items)
    assert len(a.current()) == 3 and len(b.current()) == 3 and not a.current() & b.current()
    a.release_all()
    b.release_all()


def test_it_stops_trusting_its_leases_before_anyone_else_may_take_them():
    share = Share("test-trust", ttl=2, holder="host:3:c")
    share.tick(["x"])
    assert share.current() == {"x"}
    time.sleep(2 * 0.8 + 0.05)  # no renewal (the database out of reach): current() is empty before expiry
    assert share.current() == set()
    share.release_all()
