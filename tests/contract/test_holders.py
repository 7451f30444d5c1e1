"""Proofs of life of holding engines (Store.renew_holder and the sweep's verbs), the same on every store: a proof
renewed before it expires is never listed; one expired is listed, swept at most while still expired, and a holder
renewing a swept or missing proof learns of it (False) and is proved alive again."""

from __future__ import annotations

from unified.store.base import Store

MINE, THEIRS = "host:1:aaaa", "host:2:bbbb"


def test_a_first_proof_is_written_and_says_it_was_missing(store: Store) -> None:
    assert store.renew_holder(MINE, 100.0) is False  # never proved before
    assert store.renew_holder(MINE, 200.0) is True
    assert store.expired_holders(150.0) == []  # renewed to 200
    assert store.expired_holders(201.0) == [MINE]


def test_expired_holders_lists_only_lapsed_proofs_longest_expired_first(store: Store) -> None:
    store.renew_holder(MINE, 300.0)
    store.renew_holder(THEIRS, 100.0)
    store.renew_holder("host:3:cccc", 200.0)
    assert store.expired_holders(250.0) == [THEIRS, "host:3:cccc"]
    assert store.expired_holders(250.0, limit=1) == [THEIRS]
    assert store.expired_holders(100.0) == []  # expires at 100: not before


def test_a_sweep_takes_only_a_proof_still_expired(store: Store) -> None:
    store.renew_holder(THEIRS, 100.0)
    assert store.sweep_holder(THEIRS, 90.0) is False  # still alive at 90
    assert store.sweep_holder("host:9:gone", 200.0) is False  # no proof at all
    assert store.sweep_holder(THEIRS, 200.0) is True
    assert store.expired_holders(200.0) == [THEIRS]  # listed until dropped: a later sweep finishes the work


def test_a_holder_renewing_after_a_sweep_learns_of_it_and_is_alive_again(store: Store) -> None:
    store.renew_holder(THEIRS, 100.0)
    assert store.sweep_holder(THEIRS, 200.0)
    assert store.renew_holder(THEIRS, 400.0) is False  # presumed dead meanwhile
    assert store.expired_holders(300.0) == []
    assert store.renew_holder(THEIRS, 500.0) is True
    store.drop_holder(THEIRS, only_swept=True)  # renewed, no longer swept: kept
    assert store.expired_holders(600.0) == [THEIRS]


def test_dropping_a_proof(store: Store) -> None:
    store.renew_holder(MINE, 100.0)
    store.renew_holder(THEIRS, 100.0)
    store.drop_holder(MINE, only_swept=True)  # not swept: kept
    assert store.expired_holders(200.0) == [MINE, THEIRS]
    store.sweep_holder(THEIRS, 200.0)
    store.drop_holder(THEIRS, only_swept=True)
    store.drop_holder(MINE)  # a holder shutting down
    store.drop_holder("host:9:gone")  # nothing to drop: harmless
    assert store.expired_holders(200.0) == []
    assert store.renew_holder(MINE, 300.0) is False  # a new proof
