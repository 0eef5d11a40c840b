"""Where a session's model lives and trains: one ``TrainingBackend`` protocol, three backends.

* ``InlineBackend``: a ``Trainer`` stepped in the calling thread (tests, scripts, notebooks).
* ``EngineBackend``: a handle on a slot of the server's training engine (``explorer.training.engine``)
  and the state it last synced back, to restore the model from when the engine is lost.
* ``LoadedBackend``: a model file's ``FlowModel``, drawn and saved, never trained.

A backend knows nothing of the page: the runner (``explorer.training.runner``) owns the states,
the locks and the messages, and asks a backend only for what is listed in ``TrainingBackend``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from fmcore import io as model_io
from fmcore.models import FlowModel
from fmcore.trainer import Trainer, TrainStats

from .engine import Engine, EngineLost, SlotLost, get_engine
from .wire import flow_from_weights, trimmed_state

__all__ = [
    "EngineBackend",
    "InlineBackend",
    "LoadedBackend",
    "Restored",
    "Slice",
    "TrainingBackend",
    "train_slice",
]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FIRST_CHUNK = 8
"""Steps in the first call of an inline slice when the speed is unknown; the rest is sized from it."""
CHUNK = 50
"""Most steps per ``Trainer.step`` call within an inline slice (the trainer's own check interval)."""


@dataclass(frozen=True)
class Slice:
    """What one ``advance`` brought: the stats (``loss`` the mean of ``losses``) and the new losses
    (k,) float32; ``stats.step - k`` is the step they follow (earlier than the last slice's end
    after a divergence or a restore)."""

    stats: TrainStats
    losses: np.ndarray


class Restored(RuntimeError):
    """The engine lost the model; it was put back from the session's last synced state."""


class TrainingBackend(Protocol):
    """What the runner needs from a model's home.

    Attributes:
        trainable: whether ``advance`` can train (False for a loaded model).
        device: where it trains (or where the loaded model lives).
        schedule: the path schedule's name.
    """

    trainable: bool

    @property
    def device(self) -> str: ...
    @property
    def schedule(self) -> str: ...
    @property
    def velocity(self) -> Velocity: ...
    @property
    def flow(self) -> FlowModel:
        """The model it holds, as it samples now: what ``velocity`` evaluates, ``average_velocity`` of a
        mean-flow network, ``guided_velocity`` of a labelled one."""

    def advance(self, budget_s: float) -> Slice | None:
        """Train about ``budget_s`` (inline) or collect what the engine did; None: nothing new."""

    def resume(self) -> None:
        """Let ``advance`` train again (the runner's ``start``)."""

    def suspend(self) -> None:
        """Stop training until ``resume`` (the engine frees its slot, keeping the state)."""

    def set_lr(self, lr: float) -> None: ...
    def save(self, path) -> None: ...
    def loss_floor(self) -> float | None:
        """The model's irreducible loss, or None while unknown (or for a loaded model)."""


def train_slice(trainer: Trainer, budget_s: float, steps_per_s: float | None = None) -> Slice:
    """Train ``trainer`` in place for about ``budget_s`` seconds, in calls of at most ``CHUNK`` steps
    (the clock is checked often, so a machine slowing under load does not stretch the slice).
    ``steps_per_s`` sizes the first call (None: measure). Stops early at a status other than "ok"."""
    start = time.perf_counter()
    deadline = start + budget_s
    step0 = trainer.step_count
    rate = steps_per_s
    while True:
        left = deadline - time.perf_counter()
        n = min(CHUNK, max(1, int(rate * left))) if rate else FIRST_CHUNK
        stats = trainer.step(n)
        now = time.perf_counter()
        if stats.status != "ok" or stats.step == step0:
            break
        rate = (stats.step - step0) / max(now - start, 1e-9)
        if deadline - now < 0.5 / rate:
            break
    # A divergence restores a snapshot at or after step0 and drops what followed: the kept steps
    # are the last ones of the history.
    kept = stats.step - step0
    losses = np.asarray(trainer.history[len(trainer.history) - kept :] if kept > 0 else [], dtype=np.float32)
    seconds = time.perf_counter() - start
    loss = float(losses.mean()) if len(losses) else math.nan
    return Slice(dataclasses.replace(stats, loss=loss, steps_per_s=len(losses) / max(seconds, 1e-9)), losses)


# -- the loss floor, shared by sessions with the same data and settings ----------------------------

_FLOORS: dict[str, float] = {}
_FLOORS_MAX = 256
_FLOOR_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fme-loss-floor")


def floor_key(trainer: Trainer) -> str:
    """What the loss floor depends on: the data, its labels (a labelled model's ideal field is each
    class's own) and every setting but the seed (it draws its own)."""
    config = {k: v for k, v in trainer.config.items() if k != "seed"}
    digest = hashlib.sha1(trainer.data.detach().cpu().numpy().tobytes())
    if trainer.labels is not None:
        digest.update(b"labels" + trainer.labels.cpu().numpy().tobytes())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _remember_floor(key: str, value: float) -> float:
    if len(_FLOORS) >= _FLOORS_MAX:
        _FLOORS.pop(next(iter(_FLOORS)))
    _FLOORS[key] = float(value)
    return float(value)


def floor_of(trainer: Trainer, key: str | None = None) -> float:
    """``trainer.loss_floor``, computed once per ``floor_key`` in this process."""
    key = key or floor_key(trainer)
    if key not in _FLOORS:
        _remember_floor(key, trainer.loss_floor)
    return _FLOORS[key]


# -- the backends ----------------------------------------------------------------------------------


class InlineBackend:
    """A ``Trainer`` trained in the calling thread."""

    trainable = True

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self._key = floor_key(trainer)
        self._speed: float | None = None  # pure training steps/s, to size the next slice

    device = property(lambda self: str(self.trainer.device))
    schedule = property(lambda self: self.trainer.schedule.name)
    velocity = property(lambda self: self.trainer.velocity)
    flow = property(lambda self: self.trainer.flow)

    def advance(self, budget_s: float) -> Slice:
        result = train_slice(self.trainer, budget_s, self._speed)
        if result.stats.steps_per_s > 0:
            self._speed = result.stats.steps_per_s
        return result

    def resume(self) -> None:
        pass

    def suspend(self) -> None:
        pass

    def set_lr(self, lr: float) -> None:
        self.trainer.set_lr(lr)  # read at every step: safe during a slice

    def save(self, path) -> None:
        self.trainer.save(path)

    def loss_floor(self) -> float:
        """Computed here on first use (a Monte Carlo estimate of about a second)."""
        return floor_of(self.trainer, self._key)


class LoadedBackend:
    """A model read from a file: drawn and saved again, never trained."""

    trainable = False

    def __init__(self, flow: FlowModel):
        self.flow = flow

    device = property(lambda self: str(self.flow.device))
    schedule = property(lambda self: self.flow.schedule.name)
    velocity = property(lambda self: self.flow.velocity)

    def advance(self, budget_s: float) -> None:
        return None

    def resume(self) -> None:
        pass

    def suspend(self) -> None:
        pass

    def set_lr(self, lr: float) -> None:
        pass

    def save(self, path) -> None:
        model_io.save(self.flow, path)

    def loss_floor(self) -> None:
        return None


class EngineBackend:
    """A slot in the server's training engine, known by a uuid4 handle.

    The session keeps the slot's last synced state (``Trainer.state_dict``, recent losses only), the
    sampling weights of the last poll and nothing else; the engine itself is found again with
    ``get_engine()`` (or the one given), so a runner in ``st.session_state`` stays picklable.

    Args:
        trainer: the model to train, built on the CPU (checking the settings); only its state is kept.
        engine: default ``get_engine()``.
    """

    trainable = True

    def __init__(self, trainer: Trainer, engine: Engine | None = None):
        self.handle = uuid.uuid4().hex
        self._engine = engine
        self._state = trimmed_state(trainer)
        self._schedule = trainer.schedule.name
        self._key = floor_key(trainer)
        # One thread for all sessions: a class on one preset computes its floor once.
        self._floor: Future | None = None if self._key in _FLOORS else _FLOOR_THREAD.submit(floor_of, trainer)
        self._flow = trainer.flow
        self._attached = False  # the engine has the slot
        self._active = False  # the runner is training it
        self._lock = threading.Lock()
        self._device: str | None = None
        self._lr: float | None = None  # set while attached: applied again on a restore

    @property
    def engine(self) -> Engine:
        return self._engine or get_engine()

    @property
    def device(self) -> str:
        return self._device or self.engine.device or str(self.engine.device_request or "cpu")

    schedule = property(lambda self: self._schedule)
    velocity = property(lambda self: self._flow.velocity)
    flow = property(lambda self: self._flow)

    @property
    def synced_step(self) -> int:
        return int(self._state["step"])

    def advance(self, budget_s: float) -> Slice | None:
        """Join the engine if not in it yet, then collect what it trained since the last poll.

        Raises:
            Restored: the engine lost the slot (it died or dropped it); it is added again from the
                last synced state on the next call, and training goes on from there.
            EngineFull: the engine trains its cap of slots already.
        """
        with self._lock:
            if not self._active:
                return None  # paused meanwhile: joining now would train a paused model
            try:
                if not self._attached:
                    self._device = self.engine.call("add", self.handle, self._state, self._lr)
                    self._attached = True
                report = self.engine.call("poll", self.handle)
            except (EngineLost, SlotLost) as error:
                self._attached = False
                raise Restored(_plain(error)) from None
        if report.state is not None:
            self._state = report.state
        if report.flow is not None:
            self._flow = flow_from_weights(report.flow)
        if report.stats is None or (len(report.losses) == 0 and report.stats.status == "ok"):
            return None
        return Slice(report.stats, report.losses)

    def resume(self) -> None:
        with self._lock:
            self._active = True

    def suspend(self) -> None:
        with self._lock:
            self._active = False
            if self._attached:
                self._attached = False
                with contextlib.suppress(EngineLost, SlotLost):  # gone already: the synced state is left
                    self._state = self.engine.call("remove", self.handle)
                    # What the page draws from now on is the model the session holds.
                    self._flow = Trainer.from_state_dict(self._state, device="cpu").flow

    def set_lr(self, lr: float) -> None:
        with self._lock:
            if self._attached:
                try:
                    self.engine.call("set_lr", self.handle, lr)
                    self._lr = float(lr)
                    return
                except (EngineLost, SlotLost):
                    self._attached = False
            trainer = Trainer.from_state_dict(self._state, device="cpu")
            trainer.set_lr(lr)
            self._state, self._lr = trimmed_state(trainer), None

    def current_state(self) -> dict:
        """The newest state: asked of the engine while training there, else the synced one."""
        with self._lock:
            if self._attached:
                try:
                    self._state = self.engine.call("state", self.handle)
                except (EngineLost, SlotLost):
                    self._attached = False
            return self._state

    def save(self, path) -> None:
        Trainer.from_state_dict(self.current_state(), device="cpu").save(path)

    def loss_floor(self) -> float | None:
        """Computed in a server thread from the first state; None until it is back."""
        if self._key in _FLOORS:
            return _FLOORS[self._key]
        future = self._floor
        if future is None or not future.done():
            return None
        self._floor = None
        return future.result()

    def __getstate__(self):
        # st.session_state may be pickled; a future cannot be (the floor is asked again if needed).
        state = self.__dict__.copy()
        state["_floor"] = state["_engine"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _plain(error: Exception) -> str:
    """A KeyError's message without the quotes ``str`` adds."""
    return str(error.args[0]) if error.args else type(error).__name__
