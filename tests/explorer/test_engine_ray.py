"""The training engine as a Ray actor: a real local Ray head, training through it, and a killed
actor restarted by Ray with every model put back from its session."""

import time

import pytest
import torch

from explorer.training import TrainingRunner
from fmcore.datasets import sample

ray = pytest.importorskip("ray", reason="Ray is optional (requirements-dev.txt)")

from explorer.training.ray_engine import NAMESPACE, RayEngine  # noqa: E402  (needs ray)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    yield
    ray.shutdown()


def ticks_until(runner, done, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        runner.tick(0.1)
        time.sleep(0.05)
    assert done(), f"not reached in {timeout_s} s: step {runner.step}, {runner.message!r}"


def test_sessions_train_in_the_actor_and_come_back_after_it_is_killed(cluster):
    engine = RayEngine("local", sync_s=0.2)
    data, labels = sample("moons", 256, seed=0, labels=True)
    runners = [TrainingRunner("engine", engine=engine) for _ in range(2)]
    for seed, runner in enumerate(runners):
        runner.configure(data, seed=seed, **({"labels": labels} if seed else {}))  # one labelled
        runner.start()
    for runner in runners:
        ticks_until(runner, lambda r=runner: r._model.synced_step > 0)
    assert runners[0].device == "cpu" and engine.device == "cpu"
    first = engine.pid
    synced = [r._model.synced_step for r in runners]
    ray.kill(engine._handle(), no_restart=False)  # Ray starts it again, empty
    for runner in runners:
        ticks_until(runner, lambda r=runner: "restored from step" in r.message)
    for runner, step in zip(runners, synced, strict=True):
        ticks_until(runner, lambda r=runner, s=step: r.step > s + 10 and r.stats.steps_per_s > 0)
        assert runner.running and runner.status == "ok"
    assert engine.pid != first, "Ray restarted the actor in a new process"
    state = runners[1]._model.current_state()  # the labels went to the actor and came back
    assert torch.equal(state["labels"], labels) and (runners[0].n_classes, runners[1].n_classes) == (0, 2)
    grid = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    v_0, v_1 = (runners[1].guided_velocity(k, 1.0)(grid, 0.5) for k in (0, 1))
    assert not torch.allclose(v_0, v_1, atol=1e-3), "each class has its own field"
