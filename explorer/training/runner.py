"""Live training for one Playground session: a runner kept in ``st.session_state``.

    runner = session_runner(st.session_state)
    runner.configure(data, schedule="linear", target="conditional", coupling="independent", seed=0)
    runner.start()

    @st.fragment(run_every=0.2)
    def live():
        runner.tick(budget_s=0.15)        # one ~150 ms slice of training, or None
        draw(runner.velocity, runner.history, runner.status, runner.message)

Where the steps run (``FME_TRAINING``):

* ``process`` (default under ``streamlit run``): each slice goes to a server-wide pool of worker
  processes (``explorer.training.pool``). Sessions training in the server's threads fight over its GIL:
  with 5 sessions each got a few steps/s. The session's trainer state stays here, in the session.
* ``inline`` (default elsewhere: tests, scripts, notebooks): the slice runs in the calling thread.

Two script threads of one session can run at once (Streamlit's fast reruns start a new one while
the old one finishes). A lock inside the runner lets one slice run at a time; a tick that finds it
busy returns None at once instead of waiting. ``configure``, ``reset``, ``set_lr`` and ``load``
never wait for a slice: they swap the state, and a slice that finishes on the old one is dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, MutableMapping
from concurrent.futures import Future

import numpy as np
import torch

from explorer.settings import TRAINING_BACKENDS, settings
from fmcore import io as model_io
from fmcore.trainer import Trainer, TrainStats, pick_device

from .pool import (
    WorkerLost,
    flow_from_weights,
    get_pool,
    pack_state,
    train_device,
    train_slice,
    unpack_state,
)

__all__ = [
    "BACKENDS",
    "CURVE_POINTS",
    "SESSION_KEY",
    "TrainingRunner",
    "active_sessions",
    "default_backend",
    "redraw_interval",
    "session_runner",
]

SESSION_KEY = "fme_training_runner"
BACKENDS = TRAINING_BACKENDS
LOCK_WAIT_S = 0.05
"""How long a tick waits for a slice of the same session before giving up and returning None."""
POOL_SLICE_S, MAX_SLICE_S = 0.5, 1.0
"""Slices the process backend queues after the first: at least 0.5 s (each slice costs the worker
~30 ms of packing and the server a few GIL hand-offs), longer if the page redraws less often."""
CURVE_POINTS = 2000
"""``history`` returns at most this many points (block means of the losses beyond that)."""

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

REDRAW_INTERVALS_S = (0.35, 0.7, 1.5, 3.0)
"""The live redraw periods a page may use: several a second alone, every 3 s in a big class."""
ACTIVE_WINDOW_S = 2 * REDRAW_INTERVALS_S[-1]
"""A runner counts as training (``active_sessions``) if it ticked while running this recently: two
of the longest redraw periods, so a page redrawing every 3 s is never missed between two ticks."""
REDRAWS_PER_S = 10.0
"""Live redraws per second the server aims to stay under, all training sessions together."""

_TICKS: dict[int, float] = {}  # id(runner) -> time of its last tick while running
_TICKS_LOCK = threading.Lock()


def active_sessions(window_s: float = ACTIVE_WINDOW_S) -> int:
    """How many runners in this process ticked while training in the last ``window_s`` seconds.

    Only a count: the server's load, never another session's data.
    """
    now = time.monotonic()
    with _TICKS_LOCK:
        for key in [k for k, t in _TICKS.items() if now - t > 10 * window_s]:
            del _TICKS[key]  # pages closed mid-training stop ticking; forget them
        return sum(now - t <= window_s for t in _TICKS.values())


def redraw_interval(active: int) -> float:
    """Seconds between a training page's live redraws when ``active`` sessions train at once.

    Each redraw costs the server a figure build and every browser a re-render, so the period grows
    with the class to keep about ``REDRAWS_PER_S`` redraws a second in all; it is the smallest of
    ``REDRAW_INTERVALS_S`` that does, and the largest when none does (``active`` of 30 or more: 3 s).
    """
    wanted = max(active, 1) / REDRAWS_PER_S
    return next((s for s in REDRAW_INTERVALS_S if s >= wanted), REDRAW_INTERVALS_S[-1])


def default_backend() -> str:
    """``FME_TRAINING`` if set, else ``process`` inside a running Streamlit server, else ``inline``."""
    value = settings().training
    if value:
        return value
    from streamlit import runtime

    return "process" if runtime.exists() else "inline"


def session_runner(state: MutableMapping, backend: str | None = None) -> TrainingRunner:
    """This session's runner, created on first use and kept in ``state`` (``st.session_state``).

    Args:
        state: the session's state mapping (a plain dict works too).
        backend: ``inline`` or ``process``; default ``default_backend()``. Used only on creation.
    """
    runner = state.get(SESSION_KEY)
    if not isinstance(runner, TrainingRunner):
        runner = state.setdefault(SESSION_KEY, TrainingRunner(backend))
    return runner


class TrainingRunner:
    """Starts, pauses and advances one session's trainer in small time slices.

    Attributes:
        backend: ``inline`` or ``process``.  running: whether ticks train.
        stats: the last slice's ``TrainStats`` (None before the first): ``loss`` is the slice's mean
            loss and ``steps_per_s`` its steps over the tick's wall time, waiting included.
        status: ``idle`` until a slice ran, then the last slice's: ``ok``; ``diverged`` (paused,
            the trainer went back to its last healthy weights); ``done`` (max_steps reached,
            paused); ``error`` (the trainer raised, paused).
        message: "" or one sentence for the user about the last slice.
    """

    def __init__(self, backend: str | None = None):
        backend = backend or default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"unknown training backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.running = False
        self.stats: TrainStats | None = None
        self.status = "idle"
        self.message = ""
        self._spec: dict | None = None  # what configure() was given, for reset()
        self._trainer: Trainer | None = None  # inline: the live trainer
        self._state: bytes | None = None  # process: the trainer's packed state
        self._flow = None  # process or loaded: the sampling model the page draws
        self._losses = np.zeros(0, dtype=np.float32)
        self._floor_key: str | None = None
        self._floor_future: Future | None = None
        self._speed: float | None = None  # pure training steps/s, to size the next slice
        self._job = None  # process: (generation, pool.Job) of the slice in flight
        self._interval: float | None = None  # process: smoothed time between ticks
        self._last_tick: float | None = None
        self._last_result: float | None = None
        self._device: str | None = None  # process: where the workers train
        self._trained = False
        self._generation = 0
        self._slice_lock = threading.Lock()  # one slice at a time
        self._swap_lock = threading.Lock()  # short: swapping the state and taking in results
        if backend == "process":
            # Workers take seconds to start (torch import): begin when the page opens, not on Train.
            with contextlib.suppress(WorkerLost):
                get_pool().warm()

    # -- configuration ---------------------------------------------------------------------------

    def configure(
        self,
        data: torch.Tensor,
        schedule: str = "linear",
        target: str = "conditional",
        coupling: str = "independent",
        seed: int = 0,
        lr: float | None = None,
        **options,
    ) -> None:
        """Build a fresh trainer for ``data`` ((m, 2) tensor) and pause.

        Raises:
            ValueError: the data or an option was refused; the previous trainer is kept.
        """
        spec = dict(options, schedule=schedule, target=target, coupling=coupling, seed=seed)
        if lr is not None:
            spec["lr"] = lr
        self._install(self._build(data, spec), {"data": data, **spec})

    def reset(self) -> None:
        """A fresh trainer with the last configuration (new weights from the same seed), paused."""
        if self._spec is not None:
            spec = dict(self._spec)
            self._install(self._build(spec.pop("data"), spec), self._spec)

    def set_lr(self, lr: float) -> None:
        """Change the learning rate and keep the weights; after a divergence, training may go on.

        Raises:
            ValueError: not a finite number > 0.
        """
        with self._swap_lock:
            if self._trainer is not None:
                self._trainer.set_lr(lr)  # read at every step: safe during a slice
            elif self._state is not None:
                trainer = unpack_state(self._state)
                trainer.set_lr(lr)
                self._state = pack_state(trainer)
                self._generation += 1  # a slice in a worker still has the old rate
            else:
                return
            if self._spec is not None:
                self._spec = {**self._spec, "lr": float(lr)}
            if self.status in ("diverged", "error"):
                self.status, self.message = "ok", ""

    def load(self, path, name: str | None = None) -> None:
        """Show a model saved with ``save`` (validated by ``fmcore.io.load``), paused.

        A loaded model has weights but no optimizer or data: it can be drawn and saved again, and
        ``configure`` or ``reset`` go back to training.

        Args:
            path: the file.  name: what messages call it (an upload's own name), default the path.
        Raises:
            ValueError: not a model file this app can read, or not of 2-D data (the Playground's
                plane); the current model is kept.
        """
        flow = model_io.load(path, name=name)
        if flow.config.dim != 2:
            raise ValueError(
                f"{name or path} is a model of {flow.config.dim}-D data; the Playground draws 2-D flows only"
            )
        self._swap_in(None, None, flow=flow, floor_key=None)
        self.message = "Showing a loaded model. Change a setting or press reset to train a new one."

    def save(self, path) -> None:
        """Write the current model (safetensors, via ``Trainer.save``) to ``path``.

        Raises:
            ValueError: there is no model yet.
        """
        with self._swap_lock:
            trainer, state, flow = self._trainer, self._state, self._flow
        if trainer is None and state is not None:
            trainer = unpack_state(state)
        if trainer is not None:
            trainer.save(path)
        elif flow is not None:
            model_io.save(flow, path)
        else:
            raise ValueError("there is no model to save yet: configure and train one first")

    def _build(self, data, spec: dict) -> Trainer:
        if self.backend == "process":
            # Built here only to check the settings and pack the first state: the worker picks the
            # device it trains on, so the server never starts a GPU context.
            spec = {**spec, "device": "cpu"}
        return _build(data, spec)

    def _install(self, trainer: Trainer, spec: dict | None) -> None:
        if self.backend == "process":
            with contextlib.suppress(WorkerLost):
                get_pool().warm()
            self._swap_in(None, pack_state(trainer), flow=None, floor_key=_floor_key(trainer))
        else:
            self._swap_in(trainer, None, flow=None, floor_key=_floor_key(trainer))
        self._spec = spec

    def _swap_in(self, trainer, state, *, flow, floor_key) -> None:
        """Replace the model; slices still running on the old one will be dropped."""
        with self._swap_lock:
            self._generation += 1
            self._trainer, self._state, self._flow = trainer, state, flow
            self._trained = flow is not None
            self._losses = np.zeros(0, dtype=np.float32)
            self._floor_key, self._floor_future = floor_key, None
            self._speed = self._job = self._interval = self._last_tick = self._last_result = None
            self._device = None
            self.running, self.stats, self.status, self.message = False, None, "idle", ""

    # -- control ---------------------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """Whether there is a trainer to run (not before ``configure``, nor after ``load``)."""
        return self._trainer is not None or self._state is not None

    def start(self) -> None:
        """Let ticks train. Does nothing until ``configure``."""
        if self.configured:
            self.running = True

    def pause(self) -> None:
        self.running = False

    def tick(self, budget_s: float = 0.15) -> TrainStats | None:
        """Advance training by about ``budget_s`` seconds of work.

        Inline, the slice runs in this thread. With the process backend a slice is always queued
        in the pool: a tick collects the one in flight (waiting at most ~``budget_s``) and queues
        the next at once, so the worker trains while the page redraws, and a rerun never waits
        long behind a busy pool.

        Returns:
            The stats of the slice that finished in this call; None when paused, not configured,
            another thread of this session is in a tick, or no slice finished yet. Training
            failures never raise: they pause the runner and show in ``status`` and ``message``;
            a lost worker only adds a notice to ``message``.
        """
        if not self.running or not self.configured:
            return None
        with _TICKS_LOCK:
            _TICKS[id(self)] = time.monotonic()
        if not self._slice_lock.acquire(timeout=LOCK_WAIT_S):
            return None
        try:
            with self._swap_lock:
                trainer, generation = self._trainer, self._generation
            if not self.running:
                return None
            try:
                if trainer is not None:
                    started = time.perf_counter()
                    stats, losses = train_slice(trainer, budget_s, self._speed)
                    return self._adopt(generation, stats, losses, None, time.perf_counter() - started)
                return self._tick_in_pool(generation, budget_s)
            except WorkerLost as error:
                self._job = None
                return self._notice(generation, f"{_sentence(error)} It was restarted; your model is kept.")
            except Exception as error:
                self._job = None
                return self._fail(generation, error)
        finally:
            self._slice_lock.release()

    def _tick_in_pool(self, generation: int, budget_s: float) -> TrainStats | None:
        now = time.monotonic()
        if self._last_tick is not None:
            gap = min(now - self._last_tick, MAX_SLICE_S)
            self._interval = gap if self._interval is None else 0.7 * self._interval + 0.3 * gap
        self._last_tick = now
        job = self._job
        if job is None or job[0] != generation:
            job = self._job = (generation, get_pool().submit(self._state, budget_s, self._speed))
        result = job[1].result(wait_s=1.5 * budget_s)
        if result is None:
            return None
        self._job = None
        since = now - self._last_result if self._last_result is not None else None
        self._last_result = time.monotonic()
        # What this session really got: steps since its last result, queueing and redraws included
        # (the worker's own rate for a first result, or after a pause).
        losses = result.losses
        seconds = (
            since
            if since is not None and since < 5 * MAX_SLICE_S
            else len(losses) / max(result.stats.steps_per_s, 1e-9)
        )
        stats = self._adopt(generation, result.stats, losses, result, seconds)
        if stats is not None and stats.status == "ok" and self.running:
            # Long enough to cover the page's redraw and the server's own delays in taking the result
            # (it needs the GIL), so that the worker is rarely idle for one session.
            budget = min(MAX_SLICE_S, max(budget_s, POOL_SLICE_S, self._interval or 0.0))
            self._job = (generation, get_pool().submit(self._state, budget, self._speed))
        return stats

    def _adopt(self, generation, stats, losses, result, seconds) -> TrainStats | None:
        if result is not None:
            flow = flow_from_weights(result.flow)  # outside the lock: about a millisecond
        with self._swap_lock:
            if generation != self._generation:
                return None  # configured, reset or loaded during the slice
            if stats.steps_per_s > 0:
                self._speed = stats.steps_per_s
            stats = _replace(stats, steps_per_s=len(losses) / max(seconds, 1e-9))
            if result is not None:
                # After a divergence too: the worker's trainer went back to its last healthy
                # weights, and its state says "diverged" until set_lr or reset.
                self._state, self._flow, self._device = result.state, flow, result.device
            kept = stats.step - len(losses)
            self._losses = np.concatenate([self._losses[:kept], losses])
            self._trained = True
            self.stats, self.status, self.message = stats, stats.status, ""
            if stats.status != "ok":
                self.running = False
                self.message = _status_message(stats)
            return stats

    def _notice(self, generation: int, message: str) -> TrainStats | None:
        with self._swap_lock:
            if generation != self._generation:
                return None
            self.message = message
            if (
                self._floor_future is not None
                and self._floor_future.done()
                and self._floor_future.exception()
            ):
                self._floor_future = None  # lost with the worker: asked again on the next slice
            return _empty_stats(self.stats, message)

    def _fail(self, generation: int, error: Exception) -> TrainStats | None:
        with self._swap_lock:
            if generation != self._generation:
                return None
            self.running = False
            self.status = "error"
            self.message = f"Training stopped: {_sentence(error)} Change a setting or press reset."
            return _replace(_empty_stats(self.stats, self.message), status="error")

    # -- what the page draws ---------------------------------------------------------------------

    @property
    def velocity(self) -> Velocity | None:
        """``v(z, t)`` of the latest good model; None until a slice has run or a model was loaded.

        After a divergence this is the trainer's last healthy model.
        """
        with self._swap_lock:
            if not self._trained:
                return None
            source = self._trainer if self._trainer is not None else self._flow
        return None if source is None else source.velocity

    @property
    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, losses)`` for the loss curve: every step up to ``CURVE_POINTS`` of them, then
        block means, each at the block's last step."""
        losses = self._losses
        n = len(losses)
        if n <= CURVE_POINTS:
            return np.arange(1, n + 1), losses.astype(np.float64)
        edges = np.linspace(0, n, CURVE_POINTS + 1).astype(np.int64)
        means = np.add.reduceat(losses.astype(np.float64), edges[:-1]) / np.diff(edges)
        return edges[1:], means

    @property
    def loss_floor(self) -> float | None:
        """The trainer's irreducible loss, or None while unknown.

        A Monte Carlo estimate of about a second, shared by every session with the same data and
        settings (a class on one preset pays once). Inline computes it here on first use; the
        process backend asks a worker on first use and returns None until the answer is back.
        """
        key = self._floor_key
        if key is None:
            return None
        if key in _FLOORS:
            return _FLOORS[key]
        if self._trainer is not None:
            return _remember_floor(key, self._trainer.loss_floor)
        future = self._floor_future
        if future is None and self._state is not None:
            with contextlib.suppress(WorkerLost):
                self._floor_future = get_pool().loss_floor(self._state)
        elif future is not None and future.done():
            if future.exception() is None:
                return _remember_floor(key, future.result())
            self._floor_future = None  # lost with a worker: asked again on the next read
        return None

    @property
    def device(self) -> str:
        """Where training runs: the trainer's device, or the workers' once a slice came back."""
        trainer = self._trainer
        if trainer is not None:
            return str(trainer.device)
        if self._state is not None:
            return self._device or str(pick_device(train_device()))
        flow = self._flow
        return "cpu" if flow is None else str(flow.device)

    @property
    def step(self) -> int:
        stats = self.stats
        return 0 if stats is None else int(stats.step)

    @property
    def schedule(self) -> str | None:
        """Name of the path schedule the current model was trained on (a loaded one's included)."""
        trainer, flow, spec = self._trainer, self._flow, self._spec
        if trainer is not None:
            return trainer.schedule.name
        if flow is not None:
            return flow.schedule.name
        return None if spec is None else str(spec.get("schedule"))

    def __getstate__(self):
        # st.session_state may be pickled (runner.enforceSerializableSessionState); locks and
        # futures cannot be, and a restored runner asks for the loss floor again.
        state = self.__dict__.copy()
        del state["_slice_lock"], state["_swap_lock"]
        state["_floor_future"] = state["_job"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._slice_lock = threading.Lock()
        self._swap_lock = threading.Lock()


def _build(data, spec: dict) -> Trainer:
    """A new Trainer, with every refusal turned into a ValueError that a person can read."""
    spec = dict(spec)
    spec.setdefault("device", train_device())
    try:
        return Trainer(data, **spec)
    except ValueError:
        raise
    except TypeError as error:
        raise ValueError(f"invalid training option: {error}") from None
    except (KeyError, RuntimeError, OverflowError) as error:
        raise ValueError(f"could not set up training: {_sentence(error)}") from None


_FLOORS: dict[str, float] = {}
_FLOORS_MAX = 256


def _floor_key(trainer: Trainer) -> str:
    """What the loss floor depends on: the data and every setting but the seed (it draws its own)."""
    config = {k: v for k, v in trainer.config.items() if k != "seed"}
    digest = hashlib.sha1(trainer.data.detach().cpu().numpy().tobytes())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _remember_floor(key: str, value: float) -> float:
    if len(_FLOORS) >= _FLOORS_MAX:
        _FLOORS.pop(next(iter(_FLOORS)))
    _FLOORS[key] = float(value)
    return float(value)


def _replace(stats: TrainStats, **changes) -> TrainStats:
    return dataclasses.replace(stats, **changes)


def _empty_stats(last: TrainStats | None, message: str) -> TrainStats:
    """Stats for a tick that trained nothing, carrying ``message``."""
    if last is not None:
        return _replace(last, loss=math.nan, steps_per_s=0.0, status="ok", message=message)
    return TrainStats(
        step=0, loss=math.nan, elapsed=0.0, steps_per_s=0.0, lr=math.nan, status="ok", message=message
    )


def _status_message(stats: TrainStats) -> str:
    if stats.status == "diverged":
        return f"{_sentence(stats.message or 'training diverged')} Training is paused: lower the learning rate or press reset."
    if stats.status == "done":
        return f"Finished: {stats.message or 'the step limit was reached'}."
    return _sentence(stats.message or f"training stopped ({stats.status})")


def _sentence(error) -> str:
    text = str(error).strip() or type(error).__name__
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
