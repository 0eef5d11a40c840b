"""Training slices, run in the calling thread or in a server-wide pool of worker processes.

Why processes: several sessions training in the server's threads collapse to a few steps/s each,
because torch gives up the GIL around every small op and the server's Python-heavy threads (figure
serialisation, the event loop) make each re-acquire wait (see ``bench/classroom.py --micro``).
A worker process has its own GIL.

Workers are stateless: a job is ``(trainer state, budget) -> (new state, what the page draws)``.
Each session's state stays in that session (``explorer.training``), so a worker that dies loses one
slice, never a model, and the pool holds no user data between jobs (safe to share across sessions).
The server never unpickles a trainer on the hot path: it keeps the state as opaque bytes and reads
only a small ``SliceResult`` (stats, the new losses, the sampling weights).

Fair sharing comes from the executor: jobs start in submission (FIFO) order, at most one per worker
runs at once, and every job is bounded by its time budget. A session submits its next slice only
after its last one came back, so sessions take turns.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import math
import multiprocessing
import multiprocessing.context
import os
import pickle
import sys
import threading
import time
import types
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

import numpy as np
import torch

from explorer.settings import settings
from fmcore.models import FlowModel, ModelConfig, VelocityMLP
from fmcore.trainer import Trainer, TrainStats

__all__ = [
    "Job",
    "SliceResult",
    "TrainingPool",
    "WorkerLost",
    "flow_from_weights",
    "get_pool",
    "pack_state",
    "pool_size",
    "train_device",
    "train_slice",
    "unpack_state",
]

FIRST_CHUNK = 8
"""Steps in the first call of a slice when the speed is unknown; the rest is sized from it."""
CHUNK = 50
"""Most steps per ``Trainer.step`` call within a slice (the trainer's own check interval)."""
HISTORY_TAIL = 1000
"""Losses kept in the state that travels to workers. The trainer reads only the recent ones (its
divergence check uses a median of the last 500); the whole curve stays in the session, so a long
run does not make every slice slower."""


def pool_size() -> int:
    """Workers in the shared pool: ``FME_TRAIN_WORKERS``, else one per core but one.

    One core stays with the server process, which serialises figures and runs the event loop.
    """
    return settings().train_workers or max(1, (os.cpu_count() or 1) - 1)


def train_slice(
    trainer: Trainer, budget_s: float, steps_per_s: float | None = None
) -> tuple[TrainStats, np.ndarray]:
    """Train for about ``budget_s`` seconds.

    Args:
        trainer: trained in place.  budget_s: wall-time budget of the slice.
        steps_per_s: a speed estimate from the last slice, to size the first call; None to measure.
    Returns:
        ``(stats, losses)``: the last ``TrainStats`` of the slice with ``loss`` the mean over the
        slice and ``steps_per_s`` over its wall time; ``losses`` (k,) float32, one per step kept.
        Stops early at the first status other than "ok".
    """
    start = time.perf_counter()
    deadline = start + budget_s
    step0 = trainer.step_count
    rate = steps_per_s
    while True:
        # Calls of at most CHUNK steps: the clock is checked often, so the machine's speed changing
        # under load does not stretch the slice (which other sessions queue behind).
        left = deadline - time.perf_counter()
        n = min(CHUNK, max(1, int(rate * left))) if rate else FIRST_CHUNK
        stats = trainer.step(n)
        now = time.perf_counter()
        if stats.status != "ok" or stats.step == step0:
            break
        rate = (stats.step - step0) / max(now - start, 1e-9)
        if deadline - now < 0.5 / rate:
            break
    # The kept steps are the last ones of the history (a divergence restores a snapshot at or after
    # step0 and drops what followed). Index from the end: the history may be only a tail.
    kept = stats.step - step0
    losses = np.asarray(trainer.history[len(trainer.history) - kept :] if kept > 0 else [], dtype=np.float32)
    seconds = time.perf_counter() - start
    loss = float(losses.mean()) if len(losses) else math.nan
    return dataclasses.replace(stats, loss=loss, steps_per_s=len(losses) / max(seconds, 1e-9)), losses


def pack_state(trainer: Trainer) -> bytes:
    """The trainer's full state as bytes, with only the recent losses (``HISTORY_TAIL``)."""
    state = trainer.state_dict()
    state["history"] = state["history"][-HISTORY_TAIL:].clone()
    # Plain pickle, not torch's multiprocessing reductions: those move each small tensor through
    # its own shared-memory segment, which is slower here and fragile when a worker dies.
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_state(state: bytes, device=None) -> Trainer:
    return Trainer.from_state_dict(pickle.loads(state), device=device)


def train_device() -> str | None:
    """``FME_TRAIN_DEVICE`` (e.g. "cpu" on a GPU node), or None: the trainer picks cuda, mps, cpu."""
    return settings().train_device


class FlowWeights(NamedTuple):
    """The sampling network as plain arrays: a few kB, cheap to rebuild in the server."""

    config: ModelConfig
    schedule: str
    prediction: str
    weights: dict[str, np.ndarray]


def flow_weights(trainer: Trainer) -> FlowWeights:
    flow = trainer.flow
    weights = {k: v.detach().cpu().numpy().copy() for k, v in flow.net.state_dict().items()}
    return FlowWeights(flow.config, flow.schedule.name, flow.prediction, weights)


def flow_from_weights(w: FlowWeights) -> FlowModel:
    net = VelocityMLP(w.config)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in w.weights.items()})
    return FlowModel(net.requires_grad_(False), w.schedule, w.prediction)


class SliceResult(NamedTuple):
    state: bytes
    stats: TrainStats
    losses: np.ndarray
    flow: FlowWeights
    device: str


ORPHAN_CHECK_S = 1.0
"""How often a worker checks that the server that started it is still alive."""


def _exit_when_orphaned(parent: int, every_s: float = ORPHAN_CHECK_S) -> None:
    """Exit this process soon after ``parent`` (its parent's pid, taken before it could die) is gone.

    A worker whose server was stopped mid-slice blocks for ever writing its result (about 0.4 MB,
    more than a pipe holds) into a pipe it also holds the read end of, so no EPIPE ever comes:
    seen as orphaned workers that outlived their server. Only this thread notices, and it ends
    the process.
    """
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker(server: int) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(server,), name="fme-orphan-check", daemon=True).start()
    # One torch thread beats two for models this size, and the workers already use every core.
    torch.set_num_threads(1)
    # Below the server in the CPU queue: when cores are short, a page's rerun comes before a
    # training step (FME_TRAIN_NICE=0 to treat them alike).
    with contextlib.suppress(OSError, ValueError):
        os.nice(settings().train_nice)


def _ready() -> int:
    # Pay the one-time costs (first autograd pass, optimizer set-up) before a session waits on them.
    Trainer(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), device="cpu").step(2)
    return os.getpid()


def _slice_job(state: bytes, budget_s: float, steps_per_s: float | None) -> SliceResult:
    trainer = unpack_state(state, train_device())
    stats, losses = train_slice(trainer, budget_s, steps_per_s)
    return SliceResult(pack_state(trainer), stats, losses, flow_weights(trainer), str(trainer.device))


def _floor_job(state: bytes) -> float:
    return float(unpack_state(state, train_device()).loss_floor)


class WorkerLost(RuntimeError):
    """A training worker died (or never answered); the pool was restarted."""


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not re-run the server's ``__main__``.

    Spawn re-imports the parent's main module in the child. Under ``streamlit run`` that module is
    the app script itself, so every worker would run the whole app (seconds of start-up and
    hundreds of MB). The worker only needs what the jobs import, so ``__main__`` is hidden from
    the start-up data.
    """

    def start(self):
        main = sys.modules.get("__main__")
        stub = types.ModuleType("__main__")  # no __file__, no __spec__: nothing to re-import
        with _START_LOCK:
            sys.modules["__main__"] = stub
            try:
                super().start()
            finally:
                if sys.modules.get("__main__") is stub:  # a script run may have replaced it meanwhile
                    sys.modules["__main__"] = main


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


_START_LOCK = threading.Lock()


class Job:
    """One queued or running slice."""

    def __init__(self, pool: TrainingPool, executor: ProcessPoolExecutor, future: Future):
        self._pool, self._executor, self._future = pool, executor, future
        self.submitted = time.monotonic()

    def result(self, wait_s: float) -> SliceResult | None:
        """The slice's result if it is back within ``wait_s`` seconds, else None.

        Raises:
            WorkerLost: the worker died, the pool was restarted under this job, or the job has
                waited more than the pool's ``timeout_s`` (queueing included).
            Exception: whatever the trainer raised in the worker.
        """
        try:
            return self._future.result(timeout=wait_s)
        except FutureTimeout:
            if time.monotonic() - self.submitted > self._pool.timeout_s:
                self._future.cancel()
                raise WorkerLost(f"no training worker answered within {self._pool.timeout_s:.0f} s") from None
            return None
        except BrokenProcessPool:
            self._pool._discard(self._executor)
            raise WorkerLost("a training worker stopped unexpectedly") from None
        except CancelledError:
            raise WorkerLost("the training pool restarted under this slice") from None


class TrainingPool:
    """A lazily started ``ProcessPoolExecutor`` (spawn) that restarts itself after a crash.

    Args:
        size: number of worker processes (default ``pool_size()``).
        timeout_s: a slice not back after this long (queueing included) counts as lost.
    """

    def __init__(self, size: int | None = None, timeout_s: float = 300.0):
        self.size = size or pool_size()
        self.timeout_s = timeout_s
        self.restarts = 0
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.size,
                    mp_context=_WorkerContext(),
                    initializer=_init_worker,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Drop a broken executor once, however many sessions saw it break."""
        with self._lock:
            if self._executor is not executor:
                return
            self._executor = None
            self.restarts += 1
        executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn, *args) -> tuple[ProcessPoolExecutor, Future]:
        executor = self._current()
        try:
            return executor, executor.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError) as error:
            self._discard(executor)
            raise WorkerLost(f"the training pool was broken ({error})") from None

    def warm(self) -> None:
        """Start the workers now (each imports torch: a second or two) rather than on a first slice."""
        if self._executor is None:
            for _ in range(self.size):
                self._submit(_ready)

    def submit(self, state: bytes, budget_s: float, steps_per_s: float | None = None) -> Job:
        """Queue one slice of the trainer packed in ``state``; FIFO behind other sessions' slices.

        Raises:
            WorkerLost: the pool was broken; it is ready again for the next call.
        """
        executor, future = self._submit(_slice_job, state, budget_s, steps_per_s)
        return Job(self, executor, future)

    def loss_floor(self, state: bytes) -> Future:
        """The trainer's ``loss_floor`` (a Monte Carlo estimate: about a second), computed in a worker."""
        return self._submit(_floor_job, state)[1]

    def pids(self) -> list[int]:
        """Process ids of the live workers (for memory accounting and tests)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.is_alive()]

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_POOL: TrainingPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> TrainingPool:
    """The server-wide pool, created on first use (it holds no user data, so sessions share it)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = TrainingPool()
            atexit.register(_POOL.shutdown)
        return _POOL
