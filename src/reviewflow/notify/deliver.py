"""The Deliverer: sends due outbox rows from a thread of its own, never in a run's way.

Any process with a store can run one: the CLI while it executes a run, `reviewflow worker`,
`reviewflow serve`, `reviewflow notifications --deliver`. They share the work through the store:
a claim takes due rows for a lease (SQLite: one BEGIN IMMEDIATE transaction; PostgreSQL: FOR
UPDATE SKIP LOCKED), so two deliverers never send the same row at the same time, and a row whose
deliverer died is due again when its lease ends. Sends run on a few threads, each bounded by its
target's timeout: a target that hangs holds one sender thread for that long, never the run (whose
state is committed before the row exists) nor the other targets.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..executors.python import DaemonThreads
from ..logs import log
from ..store.base import Store
from ..store.outbox import DELIVERED, OutboxRecord

if TYPE_CHECKING:
    import httpx

LEASE = 120.0
"""Seconds a claimed row is this deliverer's; more than any target's timeout (at most 60 s)."""
POLL = 1.0
"""Seconds between looks at the outbox when nothing woke the deliverer."""
SENDERS_AT_ONCE = 4
_senders = DaemonThreads()
"""Threads that send, shared by the process's deliverers (daemons: a send that hangs until its
timeout never keeps a finished `reviewflow run` from exiting; idle ones are reused)."""
DRAIN = 5.0
"""Seconds a process that executed a run waits, at most, for its due notifications to go out
before it exits (what is not out by then is delivered by the next deliverer)."""


class Deliverer:
    """Claims and sends the store's due outbox rows until stopped."""

    def __init__(
        self,
        store: Store,
        *,
        concurrency: int = SENDERS_AT_ONCE,
        poll: float = POLL,
        lease: float = LEASE,
    ) -> None:
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}:outbox"
        self.concurrency = concurrency
        self.poll = poll
        self.lease = lease
        self.sent = 0
        self.failed_attempts = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None  # made by the first send (httpx loads slowly)
        self._client_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Deliverer:
        """Start the delivery thread (a daemon: it never keeps the process alive)."""
        if hasattr(self.store, "outbox_waker"):
            self.store.outbox_waker = self.wake
        self._thread = threading.Thread(target=self._loop, name="reviewflow-outbox", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look at the outbox now (called by the store after a commit that added rows)."""
        self._wake.set()

    def stop(self, drain: float = 0.0) -> None:
        """Stop claiming. With `drain` > 0, first deliver what is due for up to that many
        seconds (a run that just finished gets its notification out before the CLI exits)."""
        if drain > 0:
            self.deliver_due(drain)
        self._stop.set()
        self._wake.set()
        if hasattr(self.store, "outbox_waker") and self.store.outbox_waker == self.wake:
            self.store.outbox_waker = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Deliverer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ work

    def deliver_due(self, timeout: float) -> int:
        """Claim and send what is due, waiting up to `timeout` seconds for the sends; returns
        how many rows were claimed. Rows not finished in time stay leased to this deliverer's
        threads (or to the next deliverer once the lease ends); a failed attempt waits out
        its backoff, so each row is tried about once."""
        deadline = time.monotonic() + timeout
        claimed = 0
        while (left := deadline - time.monotonic()) > 0:
            got = self._claim_and_send()
            claimed += got
            with self._idle:
                if not got and self._busy == 0:
                    break  # nothing due and nothing in flight
                # a slot frees (its row finished) or the time is up
                self._idle.wait_for(lambda: self._busy < self.concurrency, timeout=left)
                if not got:
                    self._idle.wait_for(lambda: self._busy == 0, timeout=left)
        return claimed

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._claim_and_send()
            except StoreError as exc:
                log.warning("outbox.claim_failed", error=str(exc))
            except Exception as exc:  # the thread must live on: the next look may succeed
                log.warning("outbox.error", error=f"{type(exc).__name__}: {exc}")
            self._wake.wait(self._sleep())
            self._wake.clear()

    def _sleep(self) -> float:
        try:
            due = self.store.next_outbox_due()
        except StoreError:
            return self.poll
        if due is None:
            return self.poll
        return max(0.01, min(self.poll, due - time.time()))

    def _claim_and_send(self) -> int:
        with self._idle:
            free = self.concurrency - self._busy
        if free <= 0 or self._stop.is_set():
            return 0
        records = self.store.claim_outbox(self.owner, self.lease, free)
        for record in records:
            with self._idle:
                self._busy += 1
            _senders.submit(partial(self._send, record))
        return len(records)

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(follow_redirects=False, trust_env=False)
            return self._client

    def _send(self, record: OutboxRecord) -> None:
        from .senders import SENDERS, SendError

        started = time.monotonic()
        error: str | None = None
        permanent = False
        try:
            sender = SENDERS.get(record.kind)
            if sender is None:
                raise SendError(f"no sender for kind {record.kind!r}")
            sender(record, self._http())
        except SendError as exc:
            error, permanent = str(exc), exc.permanent
        except Exception as exc:  # a sender's bug must not kill the thread or lose the row
            error = f"{type(exc).__name__}: {exc}"
        took = round(time.monotonic() - started, 3)
        try:
            state = self.store.finish_outbox(record, self.owner, error, took, permanent)
            if state == DELIVERED:
                self.sent += 1
                log.info(
                    "outbox.delivered",
                    kind=record.kind,
                    delivery_id=record.delivery_id,
                    run_id=record.run_id,
                    attempt=record.attempts,
                )
            elif error is not None:
                self.failed_attempts += 1
                log.warning(
                    "outbox.attempt_failed",
                    kind=record.kind,
                    delivery_id=record.delivery_id,
                    run_id=record.run_id,
                    attempt=record.attempts,
                    state=state,
                    error=error,
                )
        except Exception as exc:  # store down or closed: the lease ends, another deliverer retries
            log.warning("outbox.finish_failed", delivery_id=record.delivery_id, error=str(exc))
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
            self._wake.set()


@contextmanager
def delivering(store: Store, drain: float = DRAIN) -> Iterator[Deliverer]:
    """A Deliverer for the time of the block (e.g. while this process executes a run), then
    up to `drain` seconds for what is due by then."""
    deliverer = Deliverer(store).start()
    try:
        yield deliverer
    finally:
        deliverer.stop(drain=drain)
