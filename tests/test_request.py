"""Requests: the first one made wins, and the ones after it are not kept (SPEC sections 2, 3)."""

from __future__ import annotations

import threading

from hother.cancelable import CancelationReason, ManualCancelation
from hother.cancelable._request import Request, Requests


def test_the_first_request_added_wins_and_later_ones_are_not_kept() -> None:
    requests = Requests()
    first = Request(CancelationReason.MANUAL, "first")
    assert requests.first is None
    assert requests.add(first)
    for _ in range(1000):
        assert not requests.add(Request(CancelationReason.TIMEOUT, "later"))
    assert requests.first is first
    assert len(requests) == 1


def test_requests_racing_from_threads_keep_one_winner() -> None:
    requests = Requests()
    results: list[tuple[Request, bool]] = []
    start = threading.Barrier(8)

    def ask(index: int) -> None:
        request = Request(CancelationReason.MANUAL, str(index))
        start.wait()
        results.append((request, requests.add(request)))

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [request for request, won in results if won]
    assert len(winners) == 1
    assert requests.first is winners[0]


def test_a_request_makes_the_error_for_its_reason() -> None:
    error = Request(CancelationReason.MANUAL, "stop", {"extra": 1}).error()
    assert isinstance(error, ManualCancelation)
    assert (error.message, error.context, error.extra) == ("stop", None, 1)  # type: ignore[attr-defined]
