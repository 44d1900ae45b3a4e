"""Sync python tasks run on daemon threads that are reused, and a hung one blocks nobody."""

from __future__ import annotations

import threading
import time

from reviewflow.executors.python import DaemonThreads


def test_idle_threads_are_reused_and_a_hung_job_does_not_block_others():
    pool = DaemonThreads()
    release = threading.Event()
    names: list[str] = []
    done = threading.Semaphore(0)

    def hang() -> None:
        release.wait(10)

    def record() -> None:
        names.append(threading.current_thread().name + str(threading.get_ident()))
        done.release()

    pool.submit(hang)  # occupies one thread
    for _ in range(20):
        pool.submit(record)
        assert done.acquire(timeout=5), "a job waited behind the hung one"
        time.sleep(0.001)  # let the worker go idle, so the next job reuses it
    assert len(set(names)) <= 2  # sequential jobs reuse idle threads
    assert all(t.daemon for t in threading.enumerate() if t.name == "reviewflow-sync")
    release.set()
