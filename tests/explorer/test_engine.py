"""The training engine: fair batched steps, heartbeats, the cap, syncing, and dying with its server."""

import math
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.training import Engine, TrainingRunner
from explorer.training.engine import (
    MIN_STEPS,
    STEP_CALL_S,
    EngineFull,
    EngineLost,
    EngineWorker,
    SlotLost,
    _Link,
    serve,
    unwrap,
)
from explorer.training.wire import flow_from_weights, from_wire, to_wire, trimmed_state
from fmcore.datasets import sample
from fmcore.trainer import Trainer
from tests.clock import Clock
from tests.procs import alive

ROOT = Path(__file__).resolve().parents[2]


def state(seed=0, m=256, **options):
    return trimmed_state(Trainer(sample("moons", m, seed=seed), seed=seed, device="cpu", **options))


def worker(cap=10, drop_s=10.0, sync_s=2.0, clock=None) -> EngineWorker:
    """The engine's loop state, in this process: what the worker process runs, without the pipe."""
    return EngineWorker("cpu", cap, drop_s, sync_s, clock=clock or Clock())


def test_every_training_slot_advances_at_the_same_rate():
    w = worker()
    for k, m in enumerate((64, 300, 1000)):  # data sets of different sizes
        w.op_add(f"s{k}", state(seed=k, m=m))
    for _ in range(3):
        w.train()
    steps = [w.op_poll(f"s{k}").stats.step for k in range(3)]
    assert steps[0] == steps[1] == steps[2] >= 3 * 8
    w.op_add("late", state(seed=9))
    w.train()
    late = w.op_poll("late").stats.step
    assert w.op_poll("s0").stats.step - steps[0] == late, "a newcomer gets the same steps per call"


def test_a_class_that_joins_at_once_gets_a_short_first_call_not_one_sized_for_one_slot():
    w = worker(cap=40)
    w.op_add("first", state(seed=0, m=64))
    w.rate = 2000.0  # slot-steps per second, as measured with the one slot
    assert w.call_steps() == int(2000.0 * STEP_CALL_S)
    for k in range(29):
        w.op_add(f"late-{k}", state(seed=k + 1, m=64))
    assert w.call_steps() == max(MIN_STEPS, int(2000.0 * STEP_CALL_S / 30)), "30 slots: a 30th of the steps"
    w.train()
    assert all(w.op_poll(h).stats.step == MIN_STEPS for h in w.entries)
    assert 0 < w.rate < math.inf


def test_a_poll_brings_every_new_loss_once_and_the_state_every_sync_interval():
    clock = Clock()
    w = worker(sync_s=0.3, clock=clock)
    w.op_add("a", state())
    w.train()
    first = w.op_poll("a")
    assert len(first.losses) == first.stats.step and first.flow is not None and first.state is None
    w.train()
    second = w.op_poll("a")
    assert len(second.losses) == second.stats.step - first.stats.step > 0
    assert second.stats.loss == pytest.approx(float(second.losses.mean()))
    clock.advance(0.35)
    synced = w.op_poll("a")
    assert synced.state is not None and int(synced.state["step"]) == synced.stats.step
    assert len(synced.losses) == 0 and synced.flow is None, "nothing new: no weights travel"
    resumed = Trainer.from_state_dict(synced.state)
    assert resumed.step_count == synced.stats.step


def test_states_cross_the_wire_as_arrays_and_resume_exactly():
    w = worker(sync_s=0.0)
    w.op_add("a", state(seed=4, m=300, lr_schedule="cosine"))
    w.train()
    answer = pickle.loads(pickle.dumps(w.handle("poll", "a")))  # as the pipe carries it
    wired = answer[1].state

    def tensors(value):
        if isinstance(value, dict):
            return [x for v in value.values() for x in tensors(v)]
        if isinstance(value, list | tuple):
            return [x for v in value for x in tensors(v)]
        return [value] if isinstance(value, torch.Tensor) else []

    assert wired is not None and tensors(wired) == [], "torch pickles tensors ~10x slower than arrays"
    report = unwrap(answer)
    assert report.losses.dtype == "float32" and report.flow is not None  # the rest is left as it is
    direct = w.op_state("a")
    a, b = (Trainer.from_state_dict(s) for s in (report.state, direct))
    a.step(20)
    b.step(20)
    assert a.history == b.history and a.step_count == b.step_count
    torch.testing.assert_close(
        a.velocity(torch.zeros(3, 2), 0.5), b.velocity(torch.zeros(3, 2), 0.5), rtol=0, atol=0
    )
    assert from_wire(to_wire("cpu")) == "cpu"
    back = w.handle("add", "b", to_wire(direct))  # and the other way
    assert back == ("ok", "cpu") and w.bank.trainer(w.entries["b"].slot).step_count == direct["step"]


def test_a_labelled_state_crosses_the_wire_with_its_labels_and_trains_as_a_labelled_trainer():
    points, labels = sample("pinwheel", 300, seed=2, labels=True)
    w = worker(sync_s=0.0)
    w.op_add("a", trimmed_state(Trainer(points, labels=labels, seed=2, label_dropout=0.3, device="cpu")))
    w.train()
    answer = pickle.loads(pickle.dumps(w.handle("poll", "a")))  # as the pipe carries it
    wired = answer[1].state["labels"]
    assert isinstance(wired, np.ndarray) and wired.dtype == np.int64
    report = unwrap(answer)
    assert torch.equal(report.state["labels"], labels) and report.flow.config.n_classes == 5
    alone = Trainer(points, labels=labels, seed=2, label_dropout=0.3)
    alone.step(report.stats.step)
    resumed = Trainer.from_state_dict(report.state)
    grid = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    for trainer in (resumed, flow_from_weights(report.flow)):  # the state and the weights a poll draws
        torch.testing.assert_close(
            trainer.guided_velocity(4, 2.0)(grid, 0.3),
            alone.guided_velocity(4, 2.0)(grid, 0.3),
            atol=1e-4,
            rtol=1e-4,
        )


def test_through_the_process_a_labelled_run_trains_in_the_engine():
    engine = Engine()
    try:
        points, labels = sample("moons", 256, seed=0, labels=True)
        runner = TrainingRunner("engine", engine=engine)
        runner.configure(points, seed=0, labels=labels)
        runner.start()
        deadline = time.monotonic() + 60
        while runner._model.synced_step == 0 and time.monotonic() < deadline:
            runner.tick(0.1)  # until the engine's first sync (every 2 s)
        assert runner.step > 0 and runner.running and runner.device == "cpu"
        state = runner._model.current_state()
        assert torch.equal(state["labels"], labels) and runner.n_classes == 2
        grid = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
        v_0, v_1 = (runner.guided_velocity(k, 1.0)(grid, 0.5) for k in (0, 1))
        assert not torch.allclose(v_0, v_1, atol=1e-3), "each class has its own field"
    finally:
        engine.shutdown()


def wait_until(condition, what: str, deadline_s: float = 60.0) -> None:
    """Wait for ``condition()`` with a generous deadline (a condition, never a duration)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {deadline_s:.0f} s"
        time.sleep(0.01)


class GatedWorker(EngineWorker):
    """An EngineWorker whose first batched call waits for the test's gate, and that notes after
    how many batched calls each request was answered."""

    def __init__(self, gate: threading.Event, **options):
        super().__init__("cpu", cap=50, drop_s=10.0, sync_s=2.0, **options)
        self.gate, self.calls, self.answered_after = gate, 0, []

    def train(self) -> None:
        self.calls += 1
        if self.calls == 1:
            self.gate.wait()
        super().train()

    def handle(self, op: str, *args):
        self.answered_after.append(self.calls)
        return super().handle(op, *args)


class CountingConn:
    """The server's end of the pipe, counting the requests sent through it."""

    def __init__(self, conn):
        self.conn, self.sent = conn, 0

    def send(self, message) -> None:
        self.conn.send(message)
        self.sent += 1

    def recv(self):
        return self.conn.recv()

    def close(self) -> None:
        self.conn.close()


def test_every_request_sent_during_a_batched_call_is_answered_before_the_next():
    """30 pages' polls, sent while the worker is in one long batched call (a loaded machine), are all
    answered when it ends, before its next call, and none finds its slot dropped though the call
    outlasted ``drop_s``. (One request per batched call let a class's polls queue for a minute: their
    slots were dropped as if their pages had gone, and restored from step 0 again and again.)"""
    clock, gate = Clock(), threading.Event()
    w = GatedWorker(gate, clock=clock)
    handles = [f"page-{k}" for k in range(30)]
    for k, handle in enumerate(handles):
        w.op_add(handle, state(seed=k, m=64))
    ours, theirs = multiprocessing.Pipe()
    theirs.send(("ready", 0, "cpu"))
    loop = threading.Thread(target=serve, args=(theirs, w), daemon=True)
    loop.start()
    lost = []
    conn = CountingConn(ours)
    link = _Link(conn, lost.append)
    try:
        wait_until(lambda: w.calls == 1, "the first batched call")
        reports = {}
        threads = [
            threading.Thread(target=lambda h=h: reports.__setitem__(h, link.request(60.0, "poll", h)))
            for h in handles
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: conn.sent == len(handles), "every page's poll in the pipe")
        clock.advance(2 * w.drop_s)  # the call took longer than a page may stay silent
        gate.set()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(reports) == sorted(handles) and all(r.stats is not None for r in reports.values())
        assert w.answered_after == [1] * len(handles), "all answered between the first and second call"
        assert set(w.entries) == set(handles), "no slot dropped while its page's poll waited"
    finally:
        gate.set()
        # What the server's exit does to the pipe; a close() would not wake the reader's recv().
        socket.socket(fileno=os.dup(ours.fileno())).shutdown(socket.SHUT_RDWR)
        loop.join(timeout=60)
    wait_until(lambda: lost == [link], "the link to notice the closed pipe")
    assert not loop.is_alive(), "the worker's loop ends with its pipe"
    with pytest.raises(EngineLost):
        link.request(1.0, "ping")


def test_a_slot_whose_page_stopped_polling_is_dropped():
    clock = Clock()
    w = worker(drop_s=0.2, clock=clock)
    w.op_add("gone", state(seed=1))
    w.op_add("here", state(seed=2))
    clock.advance(0.15)
    w.op_poll("here")
    clock.advance(0.1)
    w.drop_stale()
    assert set(w.entries) == {"here"} and len(w.bank) == 1
    with pytest.raises(SlotLost):
        w.op_poll("gone")


def test_the_cap_refuses_a_slot_beyond_it_with_a_plain_message():
    w = worker(cap=2)
    w.op_add("a", state())
    w.op_add("b", state())
    with pytest.raises(EngineFull, match="2 models are already training"):
        w.op_add("c", state())
    w.op_add("a", state(seed=3))  # the same handle again replaces its slot
    assert w.handle("add", "c", state()) == ("error", "full", "2 models are already training on this server")
    w.op_remove("b")
    w.op_add("c", state())
    assert set(w.entries) == {"a", "c"}


def test_a_request_the_worker_cannot_serve_is_an_answer_not_a_crash():
    w = worker()
    kind = w.handle("add", "x", {"format": "nonsense"})
    assert kind[:2] == ("error", "failed") and "Trainer state" in kind[2]
    assert w.handle("poll", "nobody")[:2] == ("error", "lost")


def test_through_the_process_a_full_engine_pauses_the_session_with_a_message():
    engine = Engine(slots=1, drop_s=30.0)
    try:
        data = sample("moons", 256, seed=0)
        first, second = TrainingRunner("engine", engine=engine), TrainingRunner("engine", engine=engine)
        for runner in (first, second):
            runner.configure(data, seed=0)
            runner.start()
        deadline = time.monotonic() + 60
        while first.step == 0 and time.monotonic() < deadline:
            first.tick(0.1)
        assert first.step > 0 and first.device == "cpu"
        second.tick(0.1)
        assert not second.running and "1 models are already training" in second.message
        assert "press Train again" in second.message
        first.pause()  # frees the slot
        second.start()
        deadline = time.monotonic() + 30
        while second.step == 0 and time.monotonic() < deadline:
            second.tick(0.1)
        assert second.step > 0 and second.running
    finally:
        engine.shutdown()


def test_the_engine_exits_when_its_server_is_killed():
    server = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from explorer.training import Engine\n"
        "engine = Engine()\n"
        "engine.call('ping')\n"
        "print(engine.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the engine outlived its server"


def test_a_synced_state_resumes_the_same_training():
    w = worker()
    w.op_add("a", state(seed=4))
    for _ in range(2):
        w.train()
    saved = w.op_state("a")
    w.op_remove("a")
    w.op_add("b", saved)
    w.train()
    alone = Trainer.from_state_dict(saved)
    alone.step(w.op_poll("b").stats.step - alone.step_count)
    grid = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    ours = w.bank.trainer(w.entries["b"].slot).velocity(grid, torch.tensor(0.5))
    torch.testing.assert_close(ours, alone.velocity(grid, torch.tensor(0.5)), atol=1e-5, rtol=1e-4)


def test_the_engine_does_not_rerun_the_servers_main_script(tmp_path):
    """Under ``streamlit run`` the app script is ``__main__``: the engine must not run it again."""
    marker = tmp_path / "ran-in-the-engine"
    script = tmp_path / "app.py"
    script.write_text(
        "import pathlib, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "if __name__ != '__main__':  # multiprocessing's spawn imports the parent's main as __mp_main__\n"
        f"    pathlib.Path({str(marker)!r}).write_text('the app script ran again')\n"
        "else:\n"
        "    from explorer.training import Engine\n"
        "    engine = Engine()\n"
        "    print(engine.call('ping')[1], flush=True)\n"
        "    engine.shutdown()\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "cpu", run.stderr
    assert not marker.exists()
