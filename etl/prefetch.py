"""One way to overlap reading with loading: the next item, prepared on a worker thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def read_ahead(
    items: Iterable[T], prepare: Callable[[T], U], *, name: str = "read-ahead"
) -> Iterator[tuple[T, U]]:
    """Each item with ``prepare(item)``, the next one read and prepared on a worker thread
    while the caller handles this one.

    Arrow parsing, the network and SQLite release the GIL, so on two cores reading overlaps
    loading. The worker stays one item ahead; its exceptions surface here, in order. Closing
    the generator waits for the item in flight and reads no more.
    """
    iterator = iter(items)

    def step() -> tuple[T, U] | None:
        for item in iterator:  # the next item, if there is one
            return item, prepare(item)
        return None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        ahead = pool.submit(step)
        while (ready := ahead.result()) is not None:
            ahead = pool.submit(step)
            yield ready
