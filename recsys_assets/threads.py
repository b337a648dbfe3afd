"""Run one function in a thread beside the caller's block, for work that releases the GIL.

Why: a step's single-threaded Python (MLflow logging, imports, store creation) holds the GIL and
leaves the second core idle; DuckDB queries, LightGBM and compiled predict release it. Running the
latter in a thread while the caller does the former overlaps them, in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def in_thread(name: str, fn: Callable[..., T], /, *args, **kwargs) -> Iterator[Future[T]]:
    """`fn(*args, **kwargs)` runs in a thread named `name` while the block runs; the block gets
    its Future (`.result()` waits for it and raises its exception).

    The thread never outlives the block: leaving it waits for `fn` to return. Then `fn`'s exception
    is raised, itself (its type decides retries), with its own traceback, unless the block raised
    first: the block's exception goes on, with a note naming the thread's.
    """
    with ThreadPoolExecutor(1, thread_name_prefix=name) as pool:
        future = pool.submit(fn, *args, **kwargs)
        try:
            yield future
        except BaseException as exc:
            error = future.exception()  # waits for fn to end
            if error is not None and error is not exc:
                exc.add_note(f"meanwhile thread {name} failed: {type(error).__name__}: {error}")
            raise
    future.result()
