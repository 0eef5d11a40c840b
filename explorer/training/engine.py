"""The training engine: one spawned worker process per server, stepping every session's model at once.

The worker holds one ``fmcore.BatchTrainer``; a session holds only a handle (a uuid4 hex string)
and the last state the engine synced back to it. Every slot in the bank advances in the same
batched step, so every training session gets the same step rate, and the per-op cost of a small
network is paid once for the class rather than once per session.

    engine = get_engine()                      # the server's engine, started on first use
    device = engine.call("add", handle, state, lr)   # a Trainer.state_dict(); returns the device
    report = engine.call("poll", handle)       # new losses, the sampling weights, now and then the state
    state = engine.call("remove", handle)      # the slot's last state (pausing)

Requests from every session's thread share one pipe, each with an id (``_Link``), and the worker
answers all that wait between two batched steps (each sized to ``STEP_CALL_S``). A ``poll`` is
also the slot's heartbeat: a slot not polled for ``drop_s`` seconds (its page is gone) is dropped.
A slot's state comes back with a poll every ``sync_s`` seconds, so when the worker dies a session
restores its model from that state, losing at most ``sync_s`` of training. The worker exits when
its server does (the pipe closes, or its parent pid changes).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing
import multiprocessing.context
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np
import torch

from explorer.settings import settings
from fmcore.batch import BatchTrainer
from fmcore.trainer import TrainStats

from .wire import FlowWeights, Report, from_wire, to_wire, trimmed_state

__all__ = [
    "Engine",
    "EngineFull",
    "EngineLost",
    "EngineWorker",
    "SlotLost",
    "get_engine",
    "serve",
    "unwrap",
]

STEP_CALL_S = 0.1
"""Wall time the worker aims for in one ``BatchTrainer.step(n)``: requests wait at most about this."""
SYNC_S = 2.0
"""A slot's full state travels back to its session at most this often (what a crash can lose)."""
DROP_S = 10.0
"""A slot not polled for this long is dropped: its page is gone (pages poll every 3 s at most)."""
MIN_STEPS = 16
"""Fewest steps in one batched call. Each slot's trainer checks for divergence (and keeps a copy of
its weights) at the end of every call: a check after a single explosive step (lr 100) would keep
its weights as the last good ones, and at 30 slots a check costs about as much as a batched step,
so calls of 8 steps spent ~10 % of the engine's time on them (16: ~5 %)."""
IDLE_WAIT_S = 0.2
"""How long the worker sleeps on its pipe when no slot is training."""
START_TIMEOUT_S, CALL_TIMEOUT_S = 120.0, 60.0
"""A worker not ready after START_TIMEOUT_S (it imports torch), or a request not answered after
CALL_TIMEOUT_S, counts as lost: it is killed and the next call starts another."""
ORPHAN_CHECK_S = 1.0
"""How often the worker checks that the server that started it is still alive."""


class EngineLost(RuntimeError):
    """The engine process died or stopped answering; the next call starts a new one."""


class EngineFull(RuntimeError):
    """The engine already trains its cap of slots (``FME_ENGINE_SLOTS``)."""


class SlotLost(KeyError):
    """The engine has no slot with this handle (dropped after ``drop_s``, or a new engine)."""


# -- the worker process ---------------------------------------------------------------------------


@dataclass
class _Entry:
    slot: int
    seen: float  # time of its last poll
    synced: float  # time its state was last sent
    reported: int  # step up to which its losses were sent
    stats: TrainStats | None = None


class EngineWorker:
    """The engine's bank and the handles of its slots, as the worker process runs them (one thread).

    Usable in-process too (``bench/engine.py``, tests): ``op_*`` are the requests, ``train`` one
    batched call, ``drop_stale`` the heartbeat check.
    """

    def __init__(self, device, cap: int, drop_s: float, sync_s: float, clock=time.monotonic):
        """clock: seconds, for heartbeats and syncs (tests pass a hand-moved one)."""
        self.clock = clock
        self.bank = BatchTrainer(device=device)
        self.device = str(self.bank.device)
        self.cap, self.drop_s, self.sync_s = cap, drop_s, sync_s
        self.entries: dict[str, _Entry] = {}
        self.rate: float | None = None  # slot-steps per second in the last call, to size the next

    def handle(self, op: str, *args):
        """One request as it came over the wire -> ("ok", value) or ("error", kind, message), the
        value ready for the wire (``to_wire``); nothing a request does kills the loop."""
        try:
            return ("ok", to_wire(getattr(self, "op_" + op)(*map(from_wire, args))))
        except SlotLost as error:
            return ("error", "lost", str(error.args[0]))
        except EngineFull as error:
            return ("error", "full", str(error))
        except Exception as error:
            return ("error", "failed", f"{type(error).__name__}: {error}")

    def _entry(self, handle: str) -> _Entry:
        entry = self.entries.get(handle)
        if entry is None:
            raise SlotLost(f"the engine has no model {handle[:8]}")
        entry.seen = self.clock()
        return entry

    def op_ping(self) -> tuple[int, str, int]:
        return os.getpid(), self.device, len(self.entries)

    def op_add(self, handle: str, state: dict, lr: float | None = None) -> str:
        if handle in self.entries:
            self.op_remove(handle)
        if len(self.entries) >= self.cap:
            raise EngineFull(f"{self.cap} models are already training on this server")
        slot = self.bank.add_state(state)
        if lr is not None:
            self.bank.set_lr(slot, lr)
        now = self.clock()
        self.entries[handle] = _Entry(slot, now, now, self.bank.trainer(slot).step_count)
        return self.device

    def op_remove(self, handle: str) -> dict:
        entry = self._entry(handle)
        state = trimmed_state(self.bank.trainer(entry.slot))
        self.bank.remove(entry.slot)
        del self.entries[handle]
        return state

    def op_set_lr(self, handle: str, lr: float) -> None:
        self.bank.set_lr(self._entry(handle).slot, lr)

    def op_state(self, handle: str) -> dict:
        return trimmed_state(self.bank.trainer(self._entry(handle).slot))

    def op_poll(self, handle: str) -> Report:
        entry = self._entry(handle)
        trainer = self.bank.trainer(entry.slot)
        step = trainer.step_count
        new = max(0, step - min(entry.reported, step))  # a divergence restores an earlier step
        history = trainer.history
        losses = np.asarray(history[len(history) - new :] if new else [], dtype=np.float32)
        entry.reported = step
        stats = entry.stats
        if stats is not None:
            stats = replace(stats, loss=float(losses.mean()) if new else float("nan"))
        state = None
        if entry.seen - entry.synced >= self.sync_s:
            state, entry.synced = trimmed_state(trainer), entry.seen
        flow = FlowWeights.of(trainer) if new or stats is None else None
        return Report(stats, losses, flow, state, self.device)

    @property
    def training(self) -> bool:
        return self._training() > 0

    def drop_stale(self) -> None:
        now = self.clock()
        for handle in [h for h, e in self.entries.items() if now - e.seen > self.drop_s]:
            self.bank.remove(self.entries.pop(handle).slot)

    def _training(self) -> int:
        return sum(self.bank.trainer(e.slot).status == "ok" for e in self.entries.values())

    def call_steps(self) -> int:
        """Steps of the next batched call: about ``STEP_CALL_S`` at the last call's rate per slot.

        The rate is counted in slot-steps, so a class that joins at once (1 slot, then 30) gets a
        call 30 times shorter than one slot's, not a call of 30 times ``STEP_CALL_S`` that every
        request would wait for. (A batched step of K slots costs less than K steps of one: the
        estimate errs on the short side.)
        """
        training = self._training()
        if not self.rate or not training:
            return MIN_STEPS
        return max(MIN_STEPS, int(self.rate * STEP_CALL_S / training))

    def train(self) -> None:
        """One batched call of about ``STEP_CALL_S``: every training slot the same number of steps."""
        n, training = self.call_steps(), self._training()
        started = time.perf_counter()
        stats = self.bank.step(n)
        self.rate = n * training / max(time.perf_counter() - started, 1e-9)
        for entry in self.entries.values():
            entry.stats = stats.get(entry.slot, entry.stats)


def _exit_when_orphaned(parent: int, every_s: float = ORPHAN_CHECK_S) -> None:
    """Exit this process soon after ``parent`` (its parent's pid, taken before it could die) is gone.

    A worker blocked writing a large reply into a pipe nobody reads would never see EPIPE (seen
    as workers that outlived their server); only this thread notices, and it ends the process.
    """
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            os._exit(0)


def _serve(conn, parent: int, device, cap: int, drop_s: float, sync_s: float, nice: int) -> None:
    """The worker process: an ``EngineWorker`` on one thread, served over ``conn`` until it closes."""
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="fme-orphan-check", daemon=True).start()
    torch.set_num_threads(1)  # one thread beats several for networks this small
    with contextlib.suppress(OSError, ValueError):
        os.nice(nice)  # a page's rerun comes before a training step when cores are short
    worker = EngineWorker(device, cap, drop_s, sync_s)
    conn.send(("ready", os.getpid(), worker.device))
    serve(conn, worker)


def serve(conn, worker: EngineWorker) -> None:
    """The worker's loop: answer every waiting request ``(id, op, *args)`` with ``(id, answer)``,
    drop stale slots, take one batched call; return when the server closes its end."""
    while True:
        wait = 0.0 if worker.training else IDLE_WAIT_S
        while conn.poll(wait):
            try:
                request_id, *request = conn.recv()
            except EOFError:
                return  # the server closed its end: it is gone
            conn.send((request_id, worker.handle(*request)))
            wait = 0.0
        worker.drop_stale()
        if worker.training:
            worker.train()


# -- the server side ------------------------------------------------------------------------------


def unwrap(answer: tuple):
    """``EngineWorker.handle``'s answer -> its value (off the wire: ``from_wire``), or the error it
    reports, raised."""
    if answer[0] == "ok":
        return from_wire(answer[1])
    kind, message = answer[1], answer[2]
    raise {"lost": SlotLost, "full": EngineFull}.get(kind, RuntimeError)(message)


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not re-run the server's ``__main__`` (the app script under
    ``streamlit run``): see ``explorer.compat.spawn_without_app_script``."""

    def start(self):
        from explorer.compat import spawn_without_app_script  # the server's import, not the worker's

        with spawn_without_app_script():
            super().start()


class _Link:
    """One worker's pipe, shared by every session's thread: each request carries an id, and a reader
    thread hands each answer to the thread that asked.

    So every request that arrives while the worker is in a batched call is answered before the next
    one. (A lock held for each round trip let one request through per batched call: with 30 pages
    polling, a poll waited a minute on a loaded machine, and slots were dropped as if their pages had
    gone, restored from step 0, again and again.)

    Args:
        conn: the server's end of the pipe; the worker first sends ``("ready", pid, device)``.
        on_lost: called with this link when the pipe breaks (from the reader thread, or a sender),
            before any waiting request hears of it.
    """

    def __init__(self, conn, on_lost: Callable[[_Link], None]):
        self.conn = conn
        self.hello: Future = Future()  # (pid, device), once the worker is ready
        self._on_lost = on_lost
        self._ids = itertools.count()
        self._pending: dict[int, Future] = {}
        self._pending_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._read, name="fme-engine-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            _, pid, device = self.conn.recv()
            self.hello.set_result((pid, device))
            while True:
                request_id, answer = self.conn.recv()
                with self._pending_lock:
                    future = self._pending.pop(request_id, None)
                if future is not None:  # None: its caller timed out and left
                    future.set_result(answer)
        except (EOFError, OSError):  # the worker died, or the server closed the pipe
            pass
        self._broken()
        with contextlib.suppress(OSError):
            self.conn.close()

    def _broken(self) -> None:
        # The engine hears of it first (a restart counted) and only then do the waiting callers.
        self._on_lost(self)
        self.fail("the training engine stopped unexpectedly")

    def fail(self, message: str) -> None:
        """Answer every waiting request, and every later one, with ``EngineLost(message)``."""
        with self._pending_lock:
            self._closed = True
            waiting, self._pending = list(self._pending.values()), {}
        for future in [*waiting, self.hello]:
            if not future.done():
                future.set_exception(EngineLost(message))

    def request(self, timeout_s: float, op: str, *args):
        """Send one request and wait for its answer (its value, or the error it reports, raised).

        Raises:
            EngineLost: the pipe broke, or no answer came within ``timeout_s`` (``TimeoutError``).
        """
        future = Future()
        with self._pending_lock:
            if self._closed:
                raise EngineLost("the training engine stopped unexpectedly")
            request_id = next(self._ids)
            self._pending[request_id] = future
        try:
            with self._send_lock:
                self.conn.send((request_id, op, *map(to_wire, args)))
        except (OSError, ValueError):  # ValueError: a pipe the reader has already closed
            self._broken()
            raise EngineLost("the training engine stopped unexpectedly") from None
        try:
            answer = future.result(timeout_s)
        except TimeoutError:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            raise
        return unwrap(answer)


class Engine:
    """The server's handle on one engine worker, started lazily and again after it dies.

    Args:
        slots: cap on slots (default ``FME_ENGINE_SLOTS``).  drop_s, sync_s: as ``DROP_S``, ``SYNC_S``.
        device: where to train (default ``FME_TRAIN_DEVICE``, else cuda > mps > cpu).
    """

    def __init__(self, slots: int | None = None, drop_s: float = DROP_S, sync_s: float = SYNC_S, device=None):
        self.slots = slots or settings().engine_slots
        self.drop_s, self.sync_s = drop_s, sync_s
        self.device_request = device if device is not None else settings().train_device
        self.device: str | None = None  # known once the worker is ready
        self.pid: int | None = None
        self.restarts = 0
        self._process: _WorkerProcess | None = None
        self._link: _Link | None = None
        self._lock = threading.Lock()  # short: starting and losing the worker

    def warm(self) -> None:
        """Start the worker now (it imports torch: seconds) rather than on a first request."""
        self._current()

    def _current(self) -> _Link:
        with self._lock:
            if self._link is None:
                ours, theirs = multiprocessing.Pipe()
                args = (theirs, os.getpid(), self.device_request, self.slots, self.drop_s, self.sync_s)
                process = _WorkerProcess(target=_serve, args=(*args, settings().train_nice), daemon=True)
                process.start()
                theirs.close()  # so that the worker's death reads as EOF here
                self._process, self.pid, self.device = process, None, None
                self._link = _Link(ours, self._lose)
            return self._link

    def _lose(self, link: _Link, restart: bool = True) -> None:
        """Kill ``link``'s worker (if still alive) and fail its requests; with ``restart`` the next
        call counts as a restart. Once per link: its reader thread calls it too."""
        with self._lock:
            if self._link is not link:
                return
            process, self._process, self._link = self._process, None, None
            self.restarts += restart
        link.fail("the training engine stopped unexpectedly")
        if process.is_alive():
            process.kill()
        process.join(timeout=5)

    def call(self, op: str, *args):
        """Send one request and wait for its answer; many threads may wait at once.

        Raises:
            EngineLost: the worker died or hung; it is started again on the next call.
            EngineFull: ``add`` beyond the cap.  SlotLost: no slot with this handle.
            RuntimeError: the request failed in the worker (e.g. a state it could not read).
        """
        link = self._current()
        timeout_s = START_TIMEOUT_S  # the worker imports torch first
        try:
            self.pid, self.device = link.hello.result(timeout_s)
            timeout_s = CALL_TIMEOUT_S
            return link.request(timeout_s, op, *args)
        except TimeoutError:
            self._lose(link)
            raise EngineLost(f"the training engine did not answer within {timeout_s:.0f} s") from None

    def shutdown(self) -> None:
        link = self._link
        if link is not None:
            self._lose(link, restart=False)


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The server's engine, created on first use (it keeps no user data beyond its slots): a Ray
    actor when ``FME_RAY_ADDRESS`` is set (``explorer.training.ray_engine``), else a local worker."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            address = settings().ray_address
            if address:
                from .ray_engine import RayEngine

                _ENGINE = RayEngine(address)
            else:
                _ENGINE = Engine()
            atexit.register(_ENGINE.shutdown)
        return _ENGINE
