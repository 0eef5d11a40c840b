"""The per-session training runner: its states, thread safety, divergence, backends, isolation."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from explorer.training import TRANSITIONS, Engine, Phase, session_runner
from explorer.training.backends import train_slice
from explorer.training.wire import HISTORY_TAIL, trimmed_state
from fmcore.datasets import sample
from fmcore.trainer import Trainer
from tests.procs import alive

BUDGET = 0.05
GRID = torch.cartesian_prod(torch.linspace(-2, 2, 7), torch.linspace(-2, 2, 7))


@pytest.fixture(scope="module")
def data():
    return sample("moons", 512, seed=0)


@pytest.fixture(scope="module")
def engine():
    """One engine for this module, started before its first test so that it boots meanwhile."""
    engine = Engine(sync_s=0.2)
    engine.warm()
    yield engine
    engine.shutdown()


def runner_for(backend, engine):
    from explorer.training import TrainingRunner

    return TrainingRunner(backend, engine=engine if backend == "engine" else None)


def field(velocity, t=0.5):
    return velocity(GRID, torch.tensor(t))


def ticks(runner, n, budget_s=BUDGET):
    return [runner.tick(budget_s) for _ in range(n)]


def test_configure_start_tick_pause_reset(data):
    runner = session_runner({}, backend="inline")
    assert runner.tick() is None and runner.velocity is None and runner.status == "idle"
    runner.configure(data, seed=1)
    assert runner.tick() is None, "a configured runner stays paused until start()"
    runner.start()
    first, second = ticks(runner, 2)
    assert 0 < first.step < second.step and first.status == "ok"
    assert runner.stats is second and runner.step == second.step
    steps, losses = runner.history
    assert len(steps) == len(losses) > 0 and steps[-1] == second.step
    assert field(runner.velocity).shape == GRID.shape
    runner.pause()
    assert runner.tick() is None and not runner.running
    runner.reset()
    assert runner.step == 0 and not runner.running and runner.velocity is None
    assert len(runner.history[0]) == 0


def test_session_runner_is_one_per_session(data):
    alice, bob = {}, {}
    assert session_runner(alice, backend="inline") is session_runner(alice)
    assert session_runner(alice) is not session_runner(bob, backend="inline")


def test_tick_skips_while_another_thread_holds_the_slice(data):
    runner = session_runner({}, backend="inline")
    runner.configure(data, seed=1)
    runner.start()
    held, release = threading.Event(), threading.Event()

    def hold():
        with runner._slice_lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    started = time.perf_counter()
    assert runner.tick(1.0) is None
    # the holder keeps the slice 5 s: a tick that waited for it would take that long, on any machine
    assert time.perf_counter() - started < 2.5, "a busy tick must return at once, not wait for the slice"
    release.set()
    holder.join()
    assert runner.tick(BUDGET) is not None


@pytest.mark.parametrize("backend", ["inline", "engine"])
def test_two_threads_ticking_one_runner_never_corrupt_it(data, backend, engine):
    runner = runner_for(backend, engine)
    runner.configure(data, seed=2)
    runner.start()
    seen, errors = [], []

    def rerun():
        try:
            for _ in range(15):
                seen.append(runner.tick(0.02))
                time.sleep(0.02)  # a page's redraw: the engine trains meanwhile
        except Exception as error:  # the test is that nothing is raised
            errors.append(error)

    threads = [threading.Thread(target=rerun) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    done = [stats for stats in seen if stats is not None]
    assert done and all(stats.status == "ok" for stats in done)
    assert len({stats.step for stats in done}) == len(done), "two slices ended on the same step"
    steps, _ = runner.history
    assert steps[-1] == runner.step == max(stats.step for stats in done)
    assert (steps[1:] > steps[:-1]).all(), "history steps must increase: no slice ran twice at once"
    assert torch.isfinite(field(runner.velocity)).all()


@pytest.mark.parametrize("backend", ["inline", "engine"])
def test_divergence_pauses_and_keeps_the_last_good_model(data, backend, engine):
    runner = runner_for(backend, engine)
    runner.configure(data, seed=3, lr=100.0)
    runner.start()
    deadline = time.monotonic() + 60
    while runner.status in ("idle", "ok") and time.monotonic() < deadline:
        runner.tick(BUDGET)
    stats = runner.stats
    assert stats.status == "diverged" and runner.status == "diverged" and runner.phase is Phase.STOPPED
    assert not runner.running and "diverged" in runner.message.lower()
    assert runner.tick() is None, "a diverged runner stays paused"
    # The trainer went back to its last healthy snapshot: replaying that many steps gives it.
    replay = Trainer(data, seed=3, lr=100.0)
    replay.step(runner.step)
    assert replay.status == "ok"
    after = field(runner.velocity)
    assert torch.isfinite(after).all()
    # The engine's batched products sum in another order: equal up to float rounding, relative to
    # weights that lr 100 has blown up to thousands.
    torch.testing.assert_close(
        after, field(replay.velocity), atol=1e-5, rtol=1e-5 if backend == "inline" else 1e-4
    )
    assert len(runner.history[0]) == runner.step
    runner.set_lr(1e-3)
    runner.start()
    (resumed,) = results(runner, 1)
    assert resumed.status == "ok" and resumed.step > stats.step, "a lower rate resumes from the kept weights"


def test_bad_configure_keeps_the_previous_trainer(data):
    runner = session_runner({}, backend="inline")
    runner.configure(data, seed=4)
    runner.start()
    ticks(runner, 2)
    before, step = field(runner.velocity), runner.step
    for bad in (dict(schedule="no-such-schedule"), dict(target="nope"), dict(coupling="nope"), dict(bogus=1)):
        with pytest.raises(ValueError):
            runner.configure(data, **bad)
    for bad_data in (torch.zeros(0, 2), torch.full((5, 2), float("nan")), "not points"):
        with pytest.raises(ValueError):
            runner.configure(bad_data)
    assert runner.step == step and runner.running
    torch.testing.assert_close(field(runner.velocity), before)
    assert runner.tick(BUDGET).step > step


def test_two_sessions_never_share_a_model(data):
    alice, bob = session_runner({}, backend="inline"), session_runner({}, backend="inline")
    for runner in (alice, bob):
        runner.configure(data, seed=5)
    alice.start()
    ticks(alice, 3)
    assert bob.velocity is None and bob.step == 0
    bob.start()
    bob.tick(BUDGET)
    alice_field = field(alice.velocity)
    ticks(bob, 3)
    torch.testing.assert_close(field(alice.velocity), alice_field)
    assert alice._model.trainer is not bob._model.trainer


def test_a_slice_reports_every_kept_loss_even_when_the_history_is_a_tail(data):
    # Synced states carry only the recent losses (HISTORY_TAIL): a slice must still report its own.
    trainer = Trainer(data, seed=9)
    trainer.step(60)
    trainer.history = trainer.history[-10:]
    stats, losses = (lambda s: (s.stats, s.losses))(train_slice(trainer, BUDGET))
    assert len(losses) == stats.step - 60 > 0
    assert np.array_equal(losses, np.asarray(trainer.history[-len(losses) :], dtype=np.float32))
    trainer.history = [1.0] * (2 * HISTORY_TAIL)
    packed = Trainer.from_state_dict(trimmed_state(trainer))
    assert len(packed.history) == HISTORY_TAIL and packed.step_count == trainer.step_count


def test_save_and_load_round_trip(data, tmp_path):
    pytest.importorskip("fmcore.io", reason="fmcore.io (save/load) has not landed yet")
    runner = session_runner({}, backend="inline")
    with pytest.raises(ValueError):
        runner.save(tmp_path / "none.safetensors")
    runner.configure(data, seed=6)
    runner.start()
    ticks(runner, 2)
    runner.save(tmp_path / "model.safetensors")
    other = session_runner({}, backend="inline")
    other.configure(data, schedule="cosine", seed=6)
    other.load(tmp_path / "model.safetensors")
    assert other.schedule == "linear" and not other.configured and other.status == "idle"
    torch.testing.assert_close(field(other.velocity), field(runner.velocity))
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError):
        other.load(tmp_path / "junk.safetensors")
    torch.testing.assert_close(field(other.velocity), field(runner.velocity))


def results(runner, count, budget_s=0.1, timeout_s=60):
    """Tick until ``count`` slices came back (engine ticks return None until it trained)."""
    seen, deadline = [], time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        stats = runner.tick(budget_s)
        if stats is not None:
            seen.append(stats)
    assert len(seen) == count, f"only {len(seen)} of {count} slices came back in {timeout_s} s"
    return seen


def test_engine_backend_trains_like_inline(data, engine):
    runner = runner_for("engine", engine)
    runner.configure(data, seed=7)
    runner.start()
    for stats in results(runner, 3):
        assert stats.status == "ok" and stats.steps_per_s > 0, stats
    runner.pause()  # the engine hands back the state: the weights and the steps are final
    inline = Trainer(data, seed=7)
    inline.step(runner._model.synced_step)
    assert runner.device == engine.device == "cpu"
    torch.testing.assert_close(field(runner.velocity), field(inline.velocity), atol=1e-4, rtol=1e-4)
    steps, losses = runner.history
    assert steps[-1] <= runner._model.synced_step
    assert np.allclose(losses, inline.history[: len(losses)], rtol=1e-4)
    deadline = time.monotonic() + 20
    while runner.loss_floor is None and time.monotonic() < deadline:
        time.sleep(0.05)  # computed in a server thread; the page reads None meanwhile
    assert 0 < runner.loss_floor < losses.mean(), "the floor lies below the losses seen"


def test_a_model_comes_back_from_the_session_after_the_engine_is_killed(data, engine):
    runner = runner_for("engine", engine)
    runner.configure(data, seed=8)
    runner.start()
    results(runner, 2)
    deadline = time.monotonic() + 10
    while runner._model.synced_step == 0 and time.monotonic() < deadline:
        runner.tick(0.1)  # until the first sync (sync_s = 0.2 here)
    restarts, synced = engine.restarts, runner._model.synced_step
    os.kill(engine.pid, signal.SIGKILL)
    stats = runner.tick(0.1)
    assert stats is not None and f"restored from step {synced}" in stats.message
    assert stats.status == "ok" and runner.running and engine.restarts == restarts + 1
    (recovered,) = results(runner, 1)
    assert recovered.status == "ok" and "restored" in runner.message, "the notice stays a while"
    steps, _ = runner.history
    assert steps[-1] == recovered.step > synced, "the curve goes on from the restored step"


def test_every_transition_of_the_state_machine(data, tmp_path):
    runner = session_runner({}, backend="inline")
    seen = {Phase.EMPTY}
    assert runner.phase is Phase.EMPTY and not runner.configured
    runner.start()
    runner.pause()
    runner.reset()
    runner.set_lr(1e-3)
    assert runner.phase is Phase.EMPTY, "nothing to start, pause, reset or retune yet"
    runner.configure(data, seed=0)
    seen.add(runner.phase)
    assert runner.phase is Phase.PAUSED and runner.configured and not runner.running
    runner.start()
    seen.add(runner.phase)
    assert runner.phase is Phase.TRAINING and runner.running
    runner.set_lr(2e-3)
    assert runner.phase is Phase.TRAINING
    runner.tick(BUDGET)
    runner.save(tmp_path / "m.safetensors")
    runner.pause()
    assert runner.phase is Phase.PAUSED
    runner.start()
    runner.reset()
    assert runner.phase is Phase.PAUSED and runner.step == 0
    runner.load(tmp_path / "m.safetensors")
    seen.add(runner.phase)
    assert runner.phase is Phase.LOADED and not runner.configured and runner.velocity is not None
    runner.start()
    assert runner.phase is Phase.LOADED and runner.tick() is None, "a loaded model does not train"
    runner.reset()  # back to the configuration it had before
    assert runner.phase is Phase.PAUSED
    runner.configure(data, seed=0, lr=100.0)
    runner.start()
    deadline = time.monotonic() + 30
    while runner.phase is Phase.TRAINING and time.monotonic() < deadline:
        runner.tick(BUDGET)
    seen.add(runner.phase)
    assert runner.phase is Phase.STOPPED and runner.status == "diverged"
    runner.set_lr(1e-3)
    assert runner.phase is Phase.PAUSED and runner.status == "ok"
    assert seen == set(Phase)
    after = {phase for moves in TRANSITIONS.values() for phase in moves.values()}
    assert after | {Phase.EMPTY} == set(Phase), "every phase but the first is reached by some event"


def test_a_loaded_model_without_a_configuration_stays_loaded_on_reset(data, tmp_path):
    runner = session_runner({}, backend="inline")
    runner.configure(data, seed=0)
    runner.save(tmp_path / "m.safetensors")
    fresh = session_runner({}, backend="inline")
    fresh.load(tmp_path / "m.safetensors")
    fresh.reset()
    assert fresh.phase is Phase.LOADED


def test_a_labelled_model_trains_in_the_engine_like_a_labelled_trainer_and_guides(engine):
    points, labels = sample("8gaussians", 1000, seed=0, labels=True)
    runner = runner_for("engine", engine)
    runner.configure(points, seed=3, labels=labels, label_dropout=0.2)
    assert type(runner._model).__name__ == "EngineBackend"  # batched with the class, not in the server
    assert runner.n_classes == 8 and runner.guided_velocity(0, 1.0) is None  # nothing trained yet
    runner.start()
    for stats in results(runner, 3):
        assert stats.status == "ok" and stats.steps_per_s > 0, stats
    assert runner.n_classes == 8  # the weights a poll brought are a labelled net's
    v_5, v_null = field(runner.guided_velocity(5, 1.0)), field(runner.guided_velocity(5, 0.0))
    assert not torch.allclose(v_5, v_null, atol=1e-3), "the engine's field reads the label"
    runner.pause()  # the engine hands back the state: the weights and the steps are final
    alone = Trainer(points, labels=labels, seed=3, label_dropout=0.2)
    alone.step(runner._model.synced_step)
    for label, w in ((0, 1.0), (5, 2.0), (7, 0.0)):
        torch.testing.assert_close(
            field(runner.guided_velocity(label, w)),
            field(alone.guided_velocity(label, w)),
            atol=1e-4,
            rtol=1e-4,
        )
    _, losses = runner.history
    assert np.allclose(losses, alone.history[: len(losses)], rtol=1e-4)
    with pytest.raises(ValueError, match="label must be a class from 0 to 7"):
        runner.guided_velocity(8, 1.0)


def test_a_labelled_model_has_its_own_loss_floor(data):
    from explorer.training.backends import floor_key

    labels = (data[:, 0] > 0).long()
    keys = {
        floor_key(Trainer(data, device="cpu")),
        floor_key(Trainer(data, labels=labels, device="cpu")),
        floor_key(Trainer(data, labels=1 - labels, device="cpu")),
    }
    assert len(keys) == 3, "labels change the ideal field, so the floor"


def test_redraw_interval_grows_with_the_class_and_is_bounded():
    from explorer.training import REDRAW_INTERVALS_S, REDRAWS_PER_S, redraw_interval

    periods = [redraw_interval(n) for n in range(0, 101)]
    assert periods[0] == periods[1] == REDRAW_INTERVALS_S[0]  # alone: several redraws a second
    assert periods == sorted(periods)  # never faster for a bigger class
    assert set(periods) == set(REDRAW_INTERVALS_S)
    for n, period in enumerate(periods[1:31], start=1):  # up to 30 sessions the total rate is kept
        assert n / period <= REDRAWS_PER_S + 1e-9
    assert redraw_interval(30) == 3.0 and redraw_interval(1000) == REDRAW_INTERVALS_S[-1]


def test_active_sessions_counts_runners_that_tick_while_training(data, monkeypatch):
    from explorer.training import sessions as training

    monkeypatch.setattr(training, "_TICKS", {})
    runners = [session_runner({}, backend="inline") for _ in range(3)]
    for runner in runners:
        runner.configure(data, seed=0)
    runners[0].start()
    runners[1].start()
    for runner in runners:
        runner.tick(BUDGET)  # the third is not running: its tick does nothing and is not counted
    assert training.active_sessions() == 2
    assert training.active_sessions(window_s=0.0) == 0  # a page that stopped ticking drops out


def test_a_worker_exits_soon_after_its_server_is_gone():
    """A worker stuck in a pipe write must not outlive a stopped server (seen before the fix)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    worker = (
        f"import sys; sys.path.insert(0, {str(root)!r}); from explorer.training.engine import _exit_when_orphaned; "
        "_exit_when_orphaned(int(sys.argv[1]), every_s=0.1)"
    )
    server = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {worker!r}, str(os.getpid())])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    time.sleep(0.5)
    assert alive(pid)  # the parent is there: it keeps waiting
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60  # importing torch in the child may take a while under load
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_a_mean_flow_trains_inline_beside_the_engine_and_keeps_its_jumps_when_saved(data, engine, tmp_path):
    runner = runner_for("engine", engine)
    runner.configure(data, seed=0, objective="meanflow", target=None)
    assert type(runner._model).__name__ == "InlineBackend"  # the engine's batch steps flows only
    assert runner.average_velocity is None  # nothing trained yet
    runner.start()
    assert runner.tick(BUDGET).step > 0
    z, r, t = GRID, torch.tensor(0.0), torch.tensor(1.0)
    jump = runner.average_velocity(z, r, t)
    assert jump.shape == GRID.shape and torch.isfinite(jump).all()
    runner.pause()
    runner.save(tmp_path / "mean.safetensors")
    loaded = session_runner({}, backend="inline")
    loaded.load(tmp_path / "mean.safetensors")
    torch.testing.assert_close(loaded.average_velocity(z, r, t), runner.average_velocity(z, r, t))
    flow = session_runner({}, backend="inline")
    flow.configure(data, seed=0)
    flow.start()
    ticks(flow, 1)
    assert flow.velocity is not None and flow.average_velocity is None
