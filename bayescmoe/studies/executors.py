"""Where a study's fits run: in this process, in local worker processes, or on a Dask cluster.

Each executor takes a picklable function and a list of tasks and yields the results as they
complete, in any order; the caller (the only writer of the store) records them.  Worker
processes keep their compiled kernels for every task they run, and use one thread each
(``OMP_NUM_THREADS=1``): with as many workers as cores, threads inside a fit only compete.

Internal machinery of the studies (not re-exported by ``bayescmoe``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

from bayescmoe.exceptions import BayescmoeError

__all__ = ["run_tasks", "single_thread_worker"]


def single_thread_worker() -> None:
    """Worker initialiser: one OpenMP thread (set before the kernels' OpenMP runtime starts)."""
    os.environ["OMP_NUM_THREADS"] = "1"


def _inline(fn: Callable, tasks: list) -> Iterator[Any]:
    for task in tasks:
        yield fn(task)


def _local(fn: Callable, tasks: list, workers: int) -> Iterator[Any]:
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=single_thread_worker)
    try:
        futures = [pool.submit(fn, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _dask(fn: Callable, tasks: list, address: str) -> Iterator[Any]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise BayescmoeError(
            "--scheduler needs dask.distributed; install it with pip install 'bayescmoe[dask]'"
        ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise BayescmoeError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    try:
        client.run(single_thread_worker)
        futures = client.map(fn, tasks, pure=False)
        try:
            for future in dask_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()


def run_tasks(fn: Callable, tasks: Iterable, *, workers: int = 1, scheduler: str | None = None) -> Iterator[Any]:
    """Run ``fn(task)`` for every task; yield results as they complete.

    Parameters
    ----------
    workers : int
        Local worker processes (1: run in this process).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``); overrides ``workers``.
    """
    tasks = list(tasks)
    if not tasks:
        return iter(())
    if scheduler:
        return _dask(fn, tasks, scheduler)
    if workers <= 1:
        return _inline(fn, tasks)
    return _local(fn, tasks, min(workers, len(tasks)))
