"""The control server's worker pool: jobs run off the loop, results come back on it."""

from __future__ import annotations

import asyncio
import functools
import threading

from forgeoned.adapters.control.pool import WorkerPool

BOUND = 10.0


def test_results_are_delivered_on_the_loop_thread() -> None:
    async def scenario() -> list[tuple[bytes | None, bool]]:
        loop = asyncio.get_running_loop()
        loop_thread = threading.current_thread()
        pool = WorkerPool(3, name="test-pool")
        pool.start(loop)
        got: list[tuple[bytes | None, bool]] = []
        all_done = asyncio.Event()
        worker_threads: set[str] = set()

        def job(i: int) -> bytes:
            worker_threads.add(threading.current_thread().name)
            return str(i).encode()

        def done(result: bytes | None) -> None:
            got.append((result, threading.current_thread() is loop_thread))
            if len(got) == 200:
                all_done.set()

        for i in range(200):
            pool.submit(functools.partial(job, i), done)
        await asyncio.wait_for(all_done.wait(), BOUND)
        pool.shutdown(BOUND)
        assert all(name.startswith("test-pool-") for name in worker_threads)
        return got

    got = asyncio.run(scenario())
    assert sorted(int(r or b"-1") for r, _ in got) == list(range(200))
    assert all(on_loop for _, on_loop in got)


def test_a_failing_job_delivers_none_and_the_pool_goes_on() -> None:
    async def scenario() -> list[bytes | None]:
        pool = WorkerPool(1)
        pool.start(asyncio.get_running_loop())
        got: list[bytes | None] = []
        two = asyncio.Event()

        def boom() -> bytes:
            raise RuntimeError("bug")

        def done(result: bytes | None) -> None:
            got.append(result)
            if len(got) == 2:
                two.set()

        pool.submit(boom, done)
        pool.submit(lambda: b"ok", done)
        await asyncio.wait_for(two.wait(), BOUND)
        pool.shutdown(BOUND)
        return got

    assert asyncio.run(scenario()) == [None, b"ok"]


def test_shutdown_stops_every_thread_and_is_idempotent() -> None:
    async def scenario() -> WorkerPool:
        pool = WorkerPool(4, name="stop-pool")
        pool.start(asyncio.get_running_loop())
        pool.shutdown(BOUND)
        pool.shutdown(BOUND)
        return pool

    asyncio.run(scenario())
    assert not [t for t in threading.enumerate() if t.name.startswith("stop-pool-")]
    WorkerPool(2).shutdown(BOUND)  # never started: nothing to stop
