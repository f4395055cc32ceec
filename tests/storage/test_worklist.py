"""The worklist spreads annotators over different uncorrected slices."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import storage
from storage.errors import InvalidInputError, NotFoundError
from storage.store import Store


@pytest.fixture
def pool(store: Store, samples):
    for name in ("ann1", "ann2", "ann3"):
        storage.ensure_annotator(store, name)
    return [samples.slice() for _ in range(4)]


def test_concurrent_annotators_get_different_slices(store: Store, pool) -> None:
    first = storage.next_case(store, "ann1")
    second = storage.next_case(store, "ann2")
    assert first is not None and second is not None
    assert first.content_hash == pool[0].content_hash  # oldest first
    assert second.content_hash == pool[1].content_hash


def test_an_annotator_keeps_their_case_until_done(store: Store, samples, pool) -> None:
    case = storage.next_case(store, "ann1")
    assert storage.next_case(store, "ann1") == case  # page reload
    prediction = samples.prediction(case)
    samples.correction(prediction, annotator="ann1")
    following = storage.next_case(store, "ann1")
    assert following is not None and following.content_hash == pool[1].content_hash


def test_skip_and_release(store: Store, pool) -> None:
    case = storage.next_case(store, "ann1")
    skipped = storage.next_case(store, "ann1", skip={case.content_hash})
    assert skipped.content_hash == pool[1].content_hash
    # the skipped slice went back to the pool: someone else gets it
    assert storage.next_case(store, "ann2").content_hash == pool[0].content_hash
    assert storage.release_case(store, "ann2", pool[0].content_hash)
    assert not storage.release_case(store, "ann2", pool[0].content_hash)
    assert storage.next_case(store, "ann3").content_hash == pool[0].content_hash


def test_expired_leases_return_to_the_pool(store: Store, pool) -> None:
    storage.next_case(store, "ann1", lease=timedelta(milliseconds=1))
    import time

    time.sleep(0.01)
    assert storage.next_case(store, "ann2").content_hash == pool[0].content_hash


def test_lease_holders_are_the_names_with_a_live_lease(store: Store, pool) -> None:
    assert storage.lease_holders(store, []) == frozenset()
    storage.next_case(store, "ann1")
    storage.walk_case(store, "ann2")
    storage.next_case(store, "ann3", lease=timedelta(milliseconds=1))
    import time

    time.sleep(0.01)  # ann3's lease has expired
    names = ["ann1", "ann2", "ann3", "nobody"]
    assert storage.lease_holders(store, names) == {"ann1", "ann2"}
    assert storage.release_case(store, "ann1", pool[0].content_hash)
    assert storage.lease_holders(store, names) == {"ann2"}


def test_corrected_slices_leave_the_worklist(store: Store, samples, pool) -> None:
    for s in pool:
        samples.correction(samples.prediction(s, structure="VL"), annotator="ann3")
    assert storage.next_case(store, "ann1") is None
    # per structure: no VM correction yet, so everything is open again for VM
    assert storage.next_case(store, "ann1", structure="VM").content_hash == pool[0].content_hash


def test_worklist_refusals(store: Store, pool) -> None:
    with pytest.raises(NotFoundError, match="unknown annotator"):
        storage.next_case(store, "stranger")
    with pytest.raises(InvalidInputError, match="lease"):
        storage.next_case(store, "ann1", lease=timedelta(0))


def test_parallel_requests_never_hand_out_one_slice_twice(store: Store, samples) -> None:
    names = [f"par{i}" for i in range(8)]
    for name in names:
        storage.ensure_annotator(store, name)
    for _ in range(8):
        samples.slice()
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def ask(name: str) -> None:
        try:
            case = storage.next_case(store, name)
            got[name] = case.content_hash
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(got.values())) == 8


def test_a_slice_stored_for_an_annotator_is_leased_to_them(store: Store, samples) -> None:
    """No gap between storing a slice someone is correcting and their correction."""
    storage.ensure_annotator(store, "ann1")
    storage.ensure_annotator(store, "ann2")
    mine = samples.slice(lease_to="ann1")
    other = samples.slice()
    got = storage.next_case(store, "ann2")
    assert got is not None and got.content_hash == other.content_hash
    assert storage.next_case(store, "ann1") == mine  # their own live lease
    with pytest.raises(NotFoundError):
        samples.slice(lease_to="nobody")


def test_walk_visits_every_slice_once_per_annotator_in_their_own_order(
    store: Store, samples, pool
) -> None:
    hashes = {s.content_hash for s in pool}
    walks: dict[str, list[str]] = {}
    for who in ("ann1", "ann2"):
        current = None
        for _ in range(4):
            case = storage.walk_case(store, who, after=current)
            assert case is not None
            current = case.content_hash
            walks.setdefault(who, []).append(current)
        assert set(walks[who]) == hashes, "every slice once"
        assert walks[who] == sorted(walks[who], key=lambda h: storage.worklist.walk_order(who, h))
        # the walk wraps around; released so the other annotator can pass everywhere
        assert storage.walk_case(store, who, after=current).content_hash == walks[who][0]
        storage.release_case(store, who, walks[who][0])
    assert walks["ann1"] != walks["ann2"]


def test_walk_never_hands_a_slice_someone_has_open_and_drops_corrected_ones(
    store: Store, samples, pool
) -> None:
    held = storage.walk_case(store, "ann1")
    seen = set()
    current = None
    for _ in range(3):
        case = storage.walk_case(store, "ann2", after=current)
        current = case.content_hash
        seen.add(current)
    assert held.content_hash not in seen and len(seen) == 3
    samples.correction(samples.prediction(held), annotator="ann1")
    for _ in range(4):  # ann1 corrected it: it never comes back to ann1
        case = storage.walk_case(store, "ann1", after=case.content_hash if case else None)
        assert case is None or case.content_hash != held.content_hash
    with pytest.raises(InvalidInputError):
        storage.walk_case(store, "ann1", lease=timedelta(0))


def test_interleaved_walks_visit_every_slice_once_each_and_never_collide(
    store: Store, samples
) -> None:
    """Two annotators press *next* in turn over six slices: each sees all six once (a slice
    the other has open is passed over and stays unvisited for later), never the same at once;
    when one's only unvisited slice is open elsewhere they get None, not a repeat; after all
    six a new round starts with a visited one."""
    hashes = {samples.slice().content_hash for _ in range(6)}
    for name in ("ann1", "ann2"):
        storage.ensure_annotator(store, name)
    visited: dict[str, list[str]] = {"ann1": [], "ann2": []}
    current: dict[str, str | None] = {"ann1": None, "ann2": None}
    waits = 0
    while any(len(v) < 6 for v in visited.values()) and waits < 20:
        for who, other in (("ann1", "ann2"), ("ann2", "ann1")):
            if len(visited[who]) == 6:
                continue
            case = storage.walk_case(store, who, after=current[who], visited=visited[who])
            if case is None:  # the last unvisited one is open by the other annotator
                left = hashes - set(visited[who])
                assert left == {current[other]}, left
                waits += 1
                continue
            assert case.content_hash not in visited[who], "no repeat within a round"
            assert case.content_hash != current[other], "never the case the other has open"
            current[who] = case.content_hash
            visited[who].append(case.content_hash)
    assert set(visited["ann1"]) == set(visited["ann2"]) == hashes
    assert visited["ann1"] != visited["ann2"], "each in an order of their own"
    assert storage.walk_left(store, "ann1") == 6
    again = storage.walk_case(store, "ann1", after=current["ann1"], visited=visited["ann1"])
    assert again is not None and again.content_hash in hashes, "a new round"
