"""Live training for one Playground session: a runner kept in ``st.session_state``.

    runner = session_runner(st.session_state)
    runner.configure(data, schedule="linear", target="conditional", coupling="independent", seed=0)
    runner.start()

    @st.fragment(run_every=0.2)
    def live():
        runner.tick(budget_s=0.15)        # one slice of training (inline) or the engine's news, or None
        draw(runner.velocity, runner.history, runner.status, runner.message)

The runner is a state machine (``Phase``, moves in ``TRANSITIONS``) over one ``TrainingBackend``:

* ``engine`` (default under ``streamlit run``): a flow model, labelled or not, trains in the
  server's training engine (``explorer.training.engine``), batched with every other session's
  (a mean flow, which the batched step does not take, trains inline); the session keeps a handle
  and the state synced back every few seconds, and a tick only collects what the engine did.
* ``inline`` (default elsewhere: tests, scripts, notebooks): a slice runs in the calling thread.
* a loaded model file (``load``): drawn and saved, not trained.

Two script threads of one session can run at once (Streamlit's fast reruns start a new one while
the old one finishes). A lock lets one slice run at a time; a tick that finds it busy returns None
at once. ``configure``, ``reset``, ``set_lr`` and ``load`` never wait for an inline slice: they swap
the backend (a generation count), and a slice that finishes on the old one is dropped.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from collections.abc import Callable, MutableMapping

import numpy as np
import torch

from explorer.settings import TRAINING_BACKENDS, settings
from fmcore import io as model_io
from fmcore.trainer import TrainStats

from .backends import EngineBackend, InlineBackend, LoadedBackend, Restored, Slice, TrainingBackend
from .engine import Engine, EngineFull, get_engine
from .messages import build_trainer, empty_stats, sentence, status_message
from .sessions import note_tick
from .states import TRANSITIONS, Phase

__all__ = ["BACKENDS", "CURVE_POINTS", "SESSION_KEY", "TrainingRunner", "default_backend", "session_runner"]

SESSION_KEY = "fme_training_runner"
BACKENDS = TRAINING_BACKENDS
LOCK_WAIT_S = 0.05
"""How long a tick waits for a slice of the same session before giving up and returning None."""
CURVE_POINTS = 2000
"""``history`` returns at most this many points (block means of the losses beyond that)."""
NOTICE_S = 10.0
"""How long a notice about the engine (a restored model) stays in ``message`` once training is back."""

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_backend() -> str:
    """``FME_TRAINING`` if set, else ``engine`` inside a running Streamlit server, else ``inline``."""
    value = settings().training
    if value:
        return value
    from streamlit import runtime

    return "engine" if runtime.exists() else "inline"


def session_runner(state: MutableMapping, backend: str | None = None) -> TrainingRunner:
    """This session's runner, created on first use and kept in ``state`` (``st.session_state``).

    Args:
        state: the session's state mapping (a plain dict works too).
        backend: ``inline`` or ``engine``; default ``default_backend()``. Used only on creation.
    """
    runner = state.get(SESSION_KEY)
    if not isinstance(runner, TrainingRunner):
        runner = state.setdefault(SESSION_KEY, TrainingRunner(backend))
    return runner


class TrainingRunner:
    """Starts, pauses and advances one session's model.

    Args:
        backend: ``inline`` or ``engine`` (default ``default_backend()``).
        engine: the engine to train in (default the server's, ``get_engine()``); tests pass their own.

    Attributes:
        phase: the ``Phase``.  stats: the last slice's ``TrainStats`` (None before the first):
            ``loss`` the slice's mean loss, ``steps_per_s`` its steps over the wall time since the
            previous one.
        status: ``idle`` until a slice ran, then the last slice's: ``ok``; ``diverged`` (stopped,
            the trainer went back to its last healthy weights); ``done`` (max_steps reached);
            ``error`` (the trainer raised).
        message: "" or one sentence for the user about the last slice or the engine.
    """

    def __init__(self, backend: str | None = None, engine: Engine | None = None):
        backend = backend or default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"unknown training backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.id = uuid.uuid4().hex  # this runner's name in the server-wide activity count
        self.phase = Phase.EMPTY
        self.stats: TrainStats | None = None
        self.status = "idle"
        self.message = ""
        self._engine = engine
        self._model: TrainingBackend | None = None
        self._spec: dict | None = None  # what configure() was given, for reset()
        self._losses = np.zeros(0, dtype=np.float32)
        self._trained = False  # a slice came back (or a model was loaded): velocity is worth drawing
        self._last_result: float | None = None
        self._notice_at = -math.inf
        self._generation = 0
        self._slice_lock = threading.Lock()  # one slice at a time
        self._swap_lock = threading.Lock()  # short: swapping the backend and taking in results
        if backend == "engine":
            self.engine.warm()  # the worker imports torch: start it when the page opens, not on Train

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    def _go(self, event: str) -> bool:
        """Move along ``TRANSITIONS``; False (and no move) when ``event`` does nothing in this phase."""
        after = TRANSITIONS[event].get(self.phase)
        if after is not None:
            self.phase = after
        return after is not None

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
        """Build a fresh model for ``data`` ((m, 2) tensor) and pause.

        Raises:
            ValueError: the data or an option was refused; the previous model is kept.
        """
        spec = dict(options, schedule=schedule, target=target, coupling=coupling, seed=seed)
        if lr is not None:
            spec["lr"] = lr
        self._install(self._build(data, spec), "configure")
        self._spec = {"data": data, **spec}

    def reset(self) -> None:
        """A fresh model with the last configuration (new weights from the same seed), paused."""
        if self._spec is not None and self.phase in TRANSITIONS["reset"]:
            spec = dict(self._spec)
            self._install(self._build(spec.pop("data"), spec), "reset")

    def set_lr(self, lr: float) -> None:
        """Change the learning rate and keep the weights; after a divergence, training may go on.

        Raises:
            ValueError: not a finite number > 0.
        """
        model = self._model
        if not self.configured or model is None:
            return
        model.set_lr(lr)
        with self._swap_lock:
            if self._spec is not None:
                self._spec = {**self._spec, "lr": float(lr)}
            if self._go("set_lr") and self.status in ("diverged", "error"):
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
        self._install(LoadedBackend(flow), "load")
        self._trained = True
        self.message = "Showing a loaded model. Change a setting or press reset to train a new one."

    def save(self, path) -> None:
        """Write the current model (safetensors) to ``path``.

        Raises:
            ValueError: there is no model yet.
        """
        model = self._model
        if model is None:
            raise ValueError("there is no model to save yet: configure and train one first")
        model.save(path)

    def _build(self, data, spec: dict) -> TrainingBackend:
        """The backend for a new model. The engine steps flow models, labelled or not; a mean flow
        (which its batched step does not take) trains inline."""
        engine = self.backend == "engine"
        # For the engine the trainer is built here only to check the settings and hold the first
        # state: the engine picks the device it trains on, so the server never starts a GPU context.
        trainer = build_trainer(data, {**spec, "device": "cpu"} if engine else spec)
        if engine and trainer.objective == "flow":
            return EngineBackend(trainer, self._engine)
        if engine:
            trainer = build_trainer(data, spec)
        return InlineBackend(trainer)

    def _install(self, model: TrainingBackend, event: str) -> None:
        """Swap in ``model``; a slice still running on the old one will be dropped."""
        with self._swap_lock:
            old, self._model = self._model, model
            self._generation += 1
            self._go(event)
            self._losses = np.zeros(0, dtype=np.float32)
            self._trained, self._last_result, self._notice_at = False, None, -math.inf
            self.stats, self.status, self.message = None, "idle", ""
        if old is not None:
            old.suspend()

    # -- control ---------------------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """Whether there is a model to train (not before ``configure``, nor after ``load``)."""
        return self.phase in (Phase.PAUSED, Phase.TRAINING, Phase.STOPPED)

    @property
    def running(self) -> bool:
        """Whether ticks train."""
        return self.phase is Phase.TRAINING

    def start(self) -> None:
        """Let ticks train. Does nothing until ``configure``."""
        with self._swap_lock:
            if self._go("start"):
                self._model.resume()

    def pause(self) -> None:
        """Stop training (the engine frees the slot and hands back the model's state)."""
        with self._swap_lock:
            model = self._model if self._go("pause") else None
        if model is not None:
            model.suspend()

    def tick(self, budget_s: float = 0.15) -> TrainStats | None:
        """Advance training: inline, a slice of about ``budget_s`` seconds in this thread; with the
        engine, collect what it trained since the last tick (never waiting for training).

        Returns:
            The stats of the slice that finished in this call; None when not training, another
            thread of this session is in a tick, or nothing new came. Training failures never raise:
            they stop the runner and show in ``status`` and ``message``; a model the engine lost is
            restored from the session, with a notice in ``message``.
        """
        if self.phase is not Phase.TRAINING:
            return None
        note_tick(self)
        if not self._slice_lock.acquire(timeout=LOCK_WAIT_S):
            return None
        try:
            with self._swap_lock:
                model, generation = self._model, self._generation
            if self.phase is not Phase.TRAINING:
                return None
            try:
                result = model.advance(budget_s)
            except Restored as error:
                step = model.synced_step
                return self._notice(
                    generation, f"{sentence(error)} Your model was restored from step {step}."
                )
            except EngineFull as error:
                return self._refuse(generation, error)
            except Exception as error:
                return self._fail(generation, error)
            return None if result is None else self._adopt(generation, model, result)
        finally:
            self._slice_lock.release()

    def _adopt(self, generation: int, model: TrainingBackend, result: Slice) -> TrainStats | None:
        now = time.monotonic()
        with self._swap_lock:
            if generation != self._generation:
                return None  # configured, reset or loaded during the slice
            stats, losses = result.stats, result.losses
            if self._last_result is not None and now - self._last_result < 5.0 and self.backend == "engine":
                # What this session really got: steps since its last result, redraws included.
                stats = dataclasses.replace(
                    stats, steps_per_s=len(losses) / max(now - self._last_result, 1e-9)
                )
            self._last_result = now
            kept = stats.step - len(losses)
            self._losses = np.concatenate([self._losses[:kept], losses])
            self._trained = True
            self.stats, self.status = stats, stats.status
            if self._notice_at == math.inf:
                self._notice_at = now  # the notice counts from training's return
            if now - self._notice_at > NOTICE_S:
                self.message = ""
            stopped = stats.status != "ok" and self._go("stop")
            if stopped:
                self.message = status_message(stats)
        if stopped:
            model.suspend()
        return stats

    def _notice(self, generation: int, message: str) -> TrainStats | None:
        with self._swap_lock:
            if generation != self._generation:
                return None
            self.message, self._notice_at = message, math.inf
            self._last_result = None
            return empty_stats(self.stats, message)

    def _refuse(self, generation: int, error: Exception) -> TrainStats | None:
        with self._swap_lock:
            if generation != self._generation:
                return None
            self._go("refuse")
            self.message = (
                f"{sentence(error)} Training is paused: press Train again in a while, "
                "or ask your teacher to add a server."
            )
            return empty_stats(self.stats, self.message)

    def _fail(self, generation: int, error: Exception) -> TrainStats | None:
        with self._swap_lock:
            if generation != self._generation:
                return None
            self._go("stop")
            self.status = "error"
            self.message = f"Training stopped: {sentence(error)} Change a setting or press reset."
            return dataclasses.replace(empty_stats(self.stats, self.message), status="error")

    # -- what the page draws ---------------------------------------------------------------------

    @property
    def velocity(self) -> Velocity | None:
        """``v(z, t)`` of the latest good model; None until a slice has run or a model was loaded.

        After a divergence this is the trainer's last healthy model.
        """
        with self._swap_lock:
            model = self._model if self._trained else None
        return None if model is None else model.velocity

    @property
    def average_velocity(self) -> Callable | None:
        """``u(z, r, t)`` of the latest good model when it is a mean flow (``fmcore.sample_mean_flow``);
        None for a flow model, and until a slice has run or a model was loaded."""
        with self._swap_lock:
            model = self._model if self._trained else None
        flow = None if model is None else model.flow
        return flow.average_velocity if flow is not None and flow.objective == "meanflow" else None

    @property
    def n_classes(self) -> int:
        """Classes the current model is conditioned on (0: unconditional, or no model)."""
        model = self._model
        return 0 if model is None else int(model.flow.n_classes)

    def guided_velocity(self, label: int, guidance: float) -> Velocity | None:
        """The guided field ``v(z,t|null) + w (v(z,t|c) - v(z,t|null))`` of class ``label`` with
        w = ``guidance`` (``FlowModel.guided_velocity``); None while ``velocity`` is.

        Raises:
            ValueError: the model is unconditional, or has no class ``label``.
        """
        with self._swap_lock:
            model = self._model if self._trained else None
        return None if model is None else model.flow.guided_velocity(label, guidance)

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
        """The model's irreducible loss, or None while unknown: a Monte Carlo estimate of about a
        second, shared by every session with the same data and settings (a class pays once)."""
        model = self._model
        return None if model is None else model.loss_floor()

    @property
    def device(self) -> str:
        """Where training runs: the trainer's device, or the engine's."""
        model = self._model
        return "cpu" if model is None else model.device

    @property
    def step(self) -> int:
        stats = self.stats
        return 0 if stats is None else int(stats.step)

    @property
    def schedule(self) -> str | None:
        """Name of the path schedule the current model was trained on (a loaded one's included)."""
        model = self._model
        return None if model is None else model.schedule

    def __getstate__(self):
        # st.session_state may be pickled (runner.enforceSerializableSessionState); locks cannot be.
        state = self.__dict__.copy()
        del state["_slice_lock"], state["_swap_lock"]
        state["_engine"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._slice_lock = threading.Lock()
        self._swap_lock = threading.Lock()
