"""Strips made in a thread ahead of the writer: in order, errors where they
happened, and nothing left running when the writer stops early."""

from __future__ import annotations

import threading
import time

import pytest

from napari_colorize.prefetch import prefetched


def test_items_come_in_order_and_are_made_ahead():
    made = []

    def items():
        for number in range(6):
            made.append(number)
            yield number

    stream = prefetched(items(), ahead=2)
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(made) < 3 and time.monotonic() < deadline:  # 1 and 2 wait in the queue
        time.sleep(0.01)
    assert made[:3] == [0, 1, 2] and len(made) <= 4  # never more than `ahead` beyond what was taken
    assert list(stream) == [1, 2, 3, 4, 5]


def test_an_error_making_an_item_is_raised_where_that_item_was_due():
    def items():
        yield "first"
        raise OSError("disk gone")

    stream = prefetched(items())
    assert next(stream) == "first"
    with pytest.raises(OSError, match="disk gone"):
        next(stream)


def test_stopping_early_closes_the_source_and_leaves_no_thread():
    closed = threading.Event()

    def items():
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    before = threading.active_count()
    stream = prefetched(items(), ahead=1)
    assert next(stream) == 0
    stream.close()
    assert closed.is_set() and threading.active_count() == before


def test_ahead_must_be_positive():
    with pytest.raises(ValueError, match="ahead must be at least 1"):
        list(prefetched([1], ahead=0))


def test_a_producer_given_the_stop_event_stops_within_an_item():
    """The command hands the event to colorize_strips(cancel=...): stopping
    the writer (a failed write, Ctrl-C) ends the colouring at its next
    window, not after the whole frame it is on."""
    stop = threading.Event()

    def items():
        yield "first"
        for _ in range(500):  # one slow item, 5 s, that looks at the event between its steps
            if stop.is_set():
                raise RuntimeError("cancelled")
            time.sleep(0.01)
        yield "second"

    stream = prefetched(items(), stop=stop)
    assert next(stream) == "first"
    time.sleep(0.05)  # the producer is inside the slow item
    started = time.monotonic()
    stream.close()
    assert stop.is_set() and time.monotonic() - started < 2
