"""The training engine as a Ray actor: many Streamlit replicas, engines on a cluster's GPU nodes.

With ``FME_RAY_ADDRESS`` set, ``get_engine()`` returns a ``RayEngine``: a client of one named,
detached actor (``fme-engine`` in namespace ``fme``), created by the first replica to ask and
found by the others, so every replica's sessions share its batched step. The actor runs the same
``EngineWorker`` as the local engine process, in a loop thread of its own, and answers the same
requests (``call(op, *args)``), so the runner and its backends do not know which engine they use.

When the cluster has GPUs the actor takes one (``num_gpus=1``) and trains there. A dead actor is
restarted by Ray (``max_restarts=-1``); it comes back empty, so each session's next poll reads
"no such model", and the session puts its model back from its last synced state, as after a
local engine's crash.
"""

from __future__ import annotations

import threading
import time

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from explorer.settings import settings

from .engine import CALL_TIMEOUT_S, DROP_S, IDLE_WAIT_S, SYNC_S, EngineLost, EngineWorker, unwrap
from .wire import to_wire

__all__ = ["ACTOR_NAME", "NAMESPACE", "RayEngine", "connect"]

ACTOR_NAME, NAMESPACE = "fme-engine", "fme"


CALLS_AT_ONCE = 64
"""Requests the actor takes in at once (its threads); more wait in Ray's queue."""


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=CALLS_AT_ONCE)
class _EngineActor:
    """An ``EngineWorker`` stepped by a loop thread; ``call`` is one request, as over the local pipe.

    Calls run in threads of their own, and the loop takes its next batched call only when no call
    waits: as with the local pipe, every request that came during a batched call is answered before
    the next (one call at a time let a class's polls queue until their slots were dropped).
    """

    def __init__(self, device, cap: int, drop_s: float, sync_s: float):
        import torch

        torch.set_num_threads(1)
        self.worker = EngineWorker(device, cap, drop_s, sync_s)
        self.turn = threading.Condition()  # held by the loop's batched call or by one request
        self.waiting = 0  # requests waiting for their turn
        self.count_lock = threading.Lock()
        threading.Thread(target=self._loop, name="fme-engine-loop", daemon=True).start()

    def _loop(self):
        while True:
            with self.turn:
                self.turn.wait_for(lambda: not self.waiting)
                self.worker.drop_stale()
                training = self.worker.training
                if training:
                    self.worker.train()
            if not training:
                time.sleep(IDLE_WAIT_S)

    def call(self, op: str, *args):
        with self.count_lock:
            self.waiting += 1
        with self.turn:
            try:
                return self.worker.handle(op, *args)
            finally:
                with self.count_lock:
                    self.waiting -= 1
                self.turn.notify_all()

    def pid(self) -> int:
        import os

        return os.getpid()


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` once per process (``local``: start a small one here)."""
    if ray.is_initialized():
        return
    if address == "local":
        ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)


class RayEngine:
    """The server's handle on the cluster's engine actor; the same interface as ``Engine``.

    Args:
        address: ``FME_RAY_ADDRESS``.  slots, drop_s, sync_s, device: as ``Engine``'s, used by the
            replica that creates the actor.
    """

    def __init__(self, address: str, slots: int | None = None, drop_s=DROP_S, sync_s=SYNC_S, device=None):
        self.address = address
        self.slots = slots or settings().engine_slots
        self.drop_s, self.sync_s = drop_s, sync_s
        self.device_request = device if device is not None else settings().train_device
        self.device: str | None = None
        self.restarts = 0
        self._actor = None
        self._lock = threading.Lock()

    def _handle(self):
        with self._lock:
            if self._actor is None:
                connect(self.address)
                gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
                self._actor = _EngineActor.options(
                    name=ACTOR_NAME, lifetime="detached", get_if_exists=True, num_gpus=gpus
                ).remote(self.device_request, self.slots, self.drop_s, self.sync_s)
            return self._actor

    def warm(self) -> None:
        self._handle()

    @property
    def pid(self) -> int:
        """The actor's process id (for tests)."""
        return ray.get(self._handle().pid.remote(), timeout=CALL_TIMEOUT_S)

    def call(self, op: str, *args):
        """As ``Engine.call``. A dead actor reads as ``EngineLost`` (Ray restarts it meanwhile)."""
        try:
            answer = ray.get(self._handle().call.remote(op, *map(to_wire, args)), timeout=CALL_TIMEOUT_S)
        except (RayActorError, GetTimeoutError) as error:
            self.restarts += 1
            raise EngineLost(
                f"the training engine on the cluster was lost ({type(error).__name__})"
            ) from None
        if op == "add" and answer[0] == "ok":
            self.device = answer[1]
        return unwrap(answer)

    def shutdown(self) -> None:
        """Leave the actor to the cluster (other replicas use it); only drop this client's handle."""
        self._actor = None
