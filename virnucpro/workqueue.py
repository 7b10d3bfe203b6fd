"""A work queue over local devices: one worker per device, jobs pulled as workers free up, results as they finish.

Round-robin assignment up front leaves fast devices idle while a slow one (or one that drew the long shards) is still
busy; here every worker takes the next job when it is done with the last, so all devices finish together. Each worker
process keeps what it loaded (models) between jobs, so a model is loaded once per device, not once per shard.

With one device the jobs run in this process (no start-up cost, and tests can patch the job function). With several,
each worker is a spawned process (CUDA cannot be forked); its log records are forwarded to this process's loggers, so
run.log and stderr see them as if the work ran here.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable, Iterator, Sequence, TypeVar

J = TypeVar("J")
R = TypeVar("R")

#: ``fn(worker_index, device, job)``: module-level (picklable) function run in the worker that pulled ``job``.
JobFn = Callable[[int, str, J], R]

_worker: tuple[int, str] | None = None  # (index, device) of this worker process


def _init_worker(slots: "multiprocessing.Queue[tuple[int, str]]", records: "multiprocessing.Queue", level: int) -> None:
    global _worker
    _worker = slots.get()
    root = logging.getLogger("virnucpro")
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level)
    root.propagate = False


def _call(fn: JobFn, job: J) -> R:
    assert _worker is not None, "worker not initialised"
    return fn(_worker[0], _worker[1], job)


def _forward_logs(records: "multiprocessing.Queue", stop: threading.Event) -> None:
    while not stop.is_set() or not records.empty():
        try:
            record = records.get(timeout=0.1)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        logging.getLogger(record.name).handle(record)


def run_on_devices(devices: Sequence[str], jobs: Sequence[J], fn: JobFn) -> Iterator[tuple[J, R]]:
    """Run ``fn`` over ``jobs`` with one worker per entry of ``devices``; yield ``(job, result)`` in completion order.

    The first job that raises stops the queue: pending jobs are cancelled, the workers are stopped, and the exception
    is raised here. Closing the iterator early (or an interrupt while waiting) stops the workers as well.
    """
    if not jobs:
        return
    if len(devices) == 1:
        for job in jobs:
            yield job, fn(0, devices[0], job)
        return
    ctx = multiprocessing.get_context("spawn")
    slots: multiprocessing.Queue = ctx.Queue()
    for index, device in enumerate(devices):
        slots.put((index, device))
    records: multiprocessing.Queue = ctx.Queue()
    stop = threading.Event()
    forwarder = threading.Thread(target=_forward_logs, args=(records, stop), name="virnucpro-worker-logs", daemon=True)
    forwarder.start()
    level = logging.getLogger("virnucpro").getEffectiveLevel()
    pool = ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker, initargs=(slots, records, level))
    clean = False
    try:
        futures: dict[Future, J] = {pool.submit(_call, fn, job): job for job in jobs}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for fut in done:
                yield futures[fut], fut.result()
        clean = True
    finally:
        if not clean:
            _stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        stop.set()
        forwarder.join()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers (a failed or interrupted run must not wait for them)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
