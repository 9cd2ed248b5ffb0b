"""Making the next items of an iterator while the current ones are used.

The command line writes a colorized frame strip by strip: compressing one
strip (zlib, in the writer) and colouring the next (torch, OpenVINO) both
release the GIL, so in two threads they overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

#: How often (s) a producer blocked on a full queue looks whether it should stop.
STOP_POLL_S = 0.05


def prefetched(items: Iterable[Item], *, ahead: int = 2, stop: threading.Event | None = None) -> Iterator[Item]:
    """The items of ``items``, in order, made in a thread at most ``ahead`` in advance.

    An exception raised while making an item is raised here, where that
    item would have been yielded. Closing the returned generator (or an
    exception in the code that consumes it, Ctrl-C included) sets ``stop``
    and stops the thread after the item it is making, closes ``items``
    there, and waits for it: nothing runs on in the background. Give the
    producer ``stop`` too (``colorize_strips(cancel=stop.is_set)``) for it
    to stop within an item: a huge frame's strips are seconds apart.

    Examples
    --------
    >>> list(prefetched(x * x for x in range(4)))
    [0, 1, 4, 9]
    """
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1, got {ahead}")
    made: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event() if stop is None else stop
    end = object()

    def offer(entry) -> bool:
        """Queue ``entry`` unless asked to stop first; whether it was queued."""
        while not stop.is_set():
            try:
                made.put(entry, timeout=STOP_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not offer((item, None)):
                    return
            offer((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            offer((None, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="napari-colorize-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = made.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        worker.join()
