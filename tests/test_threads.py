"""`in_thread`: the result, the thread's error with its cause, and no thread left behind."""

from __future__ import annotations

import threading
import traceback

import pytest

from recsys_assets.threads import in_thread


def _alive(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_the_block_gets_the_result_while_the_function_runs_in_another_thread():
    started = threading.Event()
    names: list[str] = []

    def work(a, b=0):
        names.append(threading.current_thread().name)
        started.set()
        return a + b

    with in_thread("t-sum", work, 2, b=3) as future:
        assert started.wait(10)
        here = threading.current_thread().name
        assert future.result() == 5
    assert len(names) == 1 and names[0].startswith("t-sum") and names[0] != here
    assert not _alive("t-sum")


def _fails_in_the_thread():
    raise KeyError("missing feature x")


def test_the_threads_error_is_raised_itself_with_its_traceback():
    def block_without_result():
        with in_thread("t-fail", _fails_in_the_thread):
            pass  # the block does not ask for the result: leaving it raises

    with pytest.raises(KeyError, match="missing feature x") as info:
        block_without_result()
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "_fails_in_the_thread" in frames
    assert not _alive("t-fail")


def _block_that_fails(name, fn, release: threading.Event, error: Exception) -> None:
    """A block that lets `fn` go on, then fails with `error` (while `fn` may still run)."""
    with in_thread(name, fn):
        release.set()
        raise error


def test_the_blocks_error_goes_on_with_a_note_and_the_thread_ends_first():
    release, finished = threading.Event(), threading.Event()

    def slow_then_fail():
        release.wait(10)
        finished.set()
        raise OSError("disk full")

    with pytest.raises(ValueError, match="bad data") as info:
        _block_that_fails("t-both", slow_then_fail, release, ValueError("bad data"))
    assert finished.is_set() and not _alive("t-both")
    assert any("t-both failed: OSError: disk full" in n for n in info.value.__notes__)


def test_the_blocks_error_waits_for_a_thread_that_succeeds():
    release, finished = threading.Event(), threading.Event()

    def slow():
        release.wait(10)
        finished.set()
        return 1

    with pytest.raises(RuntimeError) as info:
        _block_that_fails("t-ok", slow, release, RuntimeError("store locked"))
    assert finished.is_set() and not _alive("t-ok")
    assert not getattr(info.value, "__notes__", [])
