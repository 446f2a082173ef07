"""Overlapping the stages of the image commands on threads.

`eval` and `upscale` repeat decode -> inference -> metrics/encoding for every image. Each
stage spends its time in C code that releases the GIL (Pillow's decoders, resampling and
zlib, LiteRT's invoke, NumPy and OpenCV), so threads overlap them on both cores without
copying images between processes. The model runs on the calling thread only (a LiteRT
interpreter is not thread-safe); :func:`prefetch` decodes ahead of it and
:class:`OrderedWork` finishes earlier images behind it. Results come back in input order
and each stage computes exactly what it would alone, so the output equals a sequential run.

Failures: an exception of any stage reaches the caller as itself (a MaiSrError stays one
line); pending work is cancelled and the threads stop before it propagates, so nothing runs
on in the background. Ctrl-C (KeyboardInterrupt on the calling thread) does the same.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` on a background thread, at most `depth` items ahead of the consumer.

    Exceptions of the producer are raised at the consumer, at the position where they
    occurred. Closing the returned generator (or leaving its loop) stops the producer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # re-raised on the consumer's thread
            put(_Failure(exc))
            return
        put(_DONE)

    # A daemon thread: one stuck in a slow read cannot keep the process alive after Ctrl-C.
    thread = threading.Thread(target=produce, name="mai-sr-prefetch", daemon=True)
    thread.start()

    def consume():
        try:
            while True:
                item = buffer.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            stop.set()

    return consume()


class _HiddenBar:
    """Takes the calls a tqdm bar takes (update, set_postfix_str, with) and shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "") -> None:
        pass

    def __enter__(self) -> "_HiddenBar":
        return self

    def __exit__(self, *exc) -> None:
        return None


def progress(*, disable: bool = False, **kwargs):
    """A tqdm progress bar (`kwargs` are tqdm's), or a hidden one when `disable`. A hidden
    bar leaves tqdm unimported: tqdm imports importlib.metadata for its version and
    multiprocessing for its lock, about 56 ms of CPU, a tenth of what a quiet one-image
    `upscale` spends before its first pixel."""
    if disable:
        return _HiddenBar()
    from tqdm import tqdm

    return tqdm(**kwargs)


def default_jobs() -> int:
    """Worker threads for metrics and encoding: one per core, at most 2 (one image is scored
    while the model runs the next; more only adds memory)."""
    return max(1, min(2, os.cpu_count() or 1))


class OrderedWork:
    """Run jobs on `workers` threads (None: :func:`default_jobs`), results in submission
    order, at most `window` pending.

    ``submit`` blocks (finishing the oldest job) while `window` jobs are pending, which bounds
    memory; finished results are passed to `on_result` in order. Use as a context manager:
    leaving it normally waits for every job; leaving it by an exception cancels the jobs not
    started and waits only for the running ones.
    """

    def __init__(self, workers: int | None = None,
                 on_result: Callable[[object], object] | None = None, window: int | None = None):
        workers = max(1, workers or default_jobs())
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mai-sr-work")
        self._pending: deque[Future] = deque()
        self._window = window or workers + 1
        self._on_result = on_result or (lambda _result: None)

    def submit(self, fn: Callable[..., T], *args) -> None:
        while len(self._pending) >= self._window:
            self._finish_oldest()
        self._pending.append(self._pool.submit(fn, *args))

    def _finish_oldest(self) -> None:
        self._on_result(self._pending.popleft().result())

    def drain(self) -> None:
        """Wait for every pending job (results to `on_result`, in order)."""
        while self._pending:
            self._finish_oldest()

    def __enter__(self) -> "OrderedWork":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.drain()
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
