"""Saving and loading models: exact round trip, and every bad file refused without unpickling."""

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import fmcore
from fmcore import Trainer, datasets
from fmcore.io import MAX_FILE_BYTES, load
from fmcore.solvers import integrate


@pytest.fixture(scope="module")
def trained():
    trainer = Trainer(datasets.sample("moons", 256, seed=0), schedule="cosine", seed=0, hidden=32)
    trainer.step(60)
    return trainer


@pytest.fixture
def saved(trained, tmp_path):
    path = tmp_path / "model.safetensors"
    trained.save(path, {"note": "hello"})
    return path


def _header(path: Path) -> tuple[dict, bytes]:
    blob = path.read_bytes()
    (size,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + size]), blob[8 + size :]


def _rewrite(path: Path, tensors: dict | None = None, **metadata_changes) -> Path:
    """A copy of a saved model with some tensors or metadata entries replaced."""
    model = load(path)
    header, _ = _header(path)
    metadata = {**header["__metadata__"], **metadata_changes}
    new_tensors = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    new_tensors.update(tensors or {})
    out = path.with_name("changed.safetensors")
    save_file(new_tensors, out, metadata=metadata)
    return out


def test_round_trip_gives_the_identical_field(trained, saved):
    model = fmcore.load(saved)
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    for t in (0.0, 0.3, 1.0):
        assert torch.equal(model.velocity(z, t), trained.velocity(z, t))
    assert model.schedule.name == "cosine" and model.prediction == "velocity"
    assert model.config == trained.model_config and model.config.hidden == 32
    assert model.metadata["note"] == "hello" and model.metadata["trainer"]["schedule"] == "cosine"
    trajectory = integrate(model.velocity, z, "rk4", 5, schedule=model.schedule)
    assert trajectory.nfe == 20


def test_noise_prediction_round_trip(tmp_path):
    trainer = Trainer(datasets.sample("moons", 128, seed=0), schedule="vp", prediction="noise", hidden=16)
    trainer.step(20)
    trainer.save(tmp_path / "eps.safetensors")
    model = load(tmp_path / "eps.safetensors")
    z = torch.randn(10, 2)
    assert model.prediction == "noise"
    assert torch.equal(model.velocity(z, 0.5), trainer.velocity(z, 0.5))


def test_a_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for name, write in (
        ("plain.pkl", lambda p: p.write_bytes(pickle.dumps(Payload()))),
        ("torch.pt", lambda p: torch.save({"weights": Payload()}, p)),
    ):
        path = tmp_path / name
        write(path)
        with pytest.raises(ValueError, match="not a safetensors model file"):
            load(path)
    assert not marker.exists()


def test_files_that_are_not_models_are_refused(tmp_path):
    for name, content in (
        ("empty.safetensors", b""),
        ("text.safetensors", b"x,y\n1,2\n"),
        ("noise.safetensors", os.urandom(4096)),
    ):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a safetensors model file"):
            load(tmp_path / name)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not an fmcore model"):
        load(other)
    with pytest.raises(ValueError, match="cannot read"):
        load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="cannot read"):
        load(tmp_path)  # a directory


def test_truncated_file_is_refused(saved):
    blob = saved.read_bytes()
    for keep in (4, 40, len(blob) - 100):
        saved.write_bytes(blob[:keep])
        with pytest.raises(ValueError, match="safetensors"):
            load(saved)


def test_huge_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ValueError, match="MB"):
        load(path)


def test_tensors_must_fit_the_config(saved):
    state = load(saved).net.state_dict()
    first = next(iter(state))
    cases = {
        "shape": {first: torch.zeros(5, 5)},
        "unexpected": {"extra.weight": torch.zeros(2)},
        "NaN": {first: torch.full_like(state[first], float("nan"))},
        "dtype": {first: torch.zeros_like(state[first], dtype=torch.int32)},
    }
    for match, tensors in cases.items():
        with pytest.raises(ValueError, match=match):
            load(_rewrite(saved, tensors))


def test_missing_tensor_is_refused(saved, tmp_path):
    model = load(saved)
    header, _ = _header(saved)
    tensors = dict(model.net.state_dict())
    tensors.pop(next(iter(tensors)))
    out = tmp_path / "missing_tensor.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, out, metadata=header["__metadata__"])
    with pytest.raises(ValueError, match="missing tensors"):
        load(out)


def test_bad_metadata_is_refused(saved):
    cases = {
        "JSON": {"model": "{not json"},
        "unknown model config keys": {"model": json.dumps({"hidden": 32, "width": 3})},
        "unknown schedule": {"schedule": "quadratic"},
        "unknown prediction": {"prediction": "banana"},
        "version": {"version": "99"},
    }
    for match, change in cases.items():
        with pytest.raises(ValueError, match=match):
            load(_rewrite(saved, **change))


def test_files_from_before_labels_load_as_unconditional(saved, trained):
    # Files written before ModelConfig had n_classes carry no such key and no guidance entry.
    header, _ = _header(saved)
    config = json.loads(header["__metadata__"]["model"])
    config.pop("n_classes")
    model = load(_rewrite(saved, model=json.dumps(config)))
    assert model.n_classes == 0 and "guidance" not in header["__metadata__"]
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.velocity(z, 0.5), trained.velocity(z, 0.5))


def test_a_labelled_model_keeps_its_classes_and_guidance_convention(tmp_path):
    points, labels = datasets.sample("pinwheel", 200, seed=0, labels=True)
    trainer = Trainer(points, labels=labels, seed=0, hidden=16)
    trainer.step(10)
    path = tmp_path / "labelled.safetensors"
    trainer.save(path)
    model = load(path)
    assert model.n_classes == 5 and model.config.n_classes == 5
    assert _header(path)[0]["__metadata__"]["guidance"] == fmcore.models.GUIDANCE
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.guided_velocity(4, 3.0)(z, 0.2), trainer.guided_velocity(4, 3.0)(z, 0.2))
    with pytest.raises(ValueError, match="guidance convention is 'w=1 is unconditional'"):
        load(_rewrite(path, guidance="w=1 is unconditional"))
    metadata = {k: v for k, v in _header(path)[0]["__metadata__"].items() if k != "guidance"}
    unstated = tmp_path / "no_guidance.safetensors"
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, unstated, metadata=metadata)
    with pytest.raises(ValueError, match="guidance convention is not stated"):
        load(unstated)
    with pytest.raises(ValueError, match="n_classes must be from 0 to 256"):
        load(_rewrite(path, model=json.dumps({**json.loads(model.config.to_json()), "n_classes": 10**6})))


# -- hostile files: every part bounded before it is used (issue 12) ----------------------------------


@pytest.mark.parametrize("field", ["model", "metadata"])
def test_deeply_nested_json_in_the_metadata_is_refused_in_plain_words(saved, field):
    for depth in (17, 100_000):  # past the limit, and past Python's recursion limit
        with pytest.raises(ValueError, match="nest"):
            load(_rewrite(saved, **{field: "[" * depth + "]" * depth}))


def test_a_deeply_nested_header_is_refused(tmp_path):
    text = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "nested.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(ValueError, match="nest"):
        load(path)


@pytest.mark.parametrize(
    ("length", "match"),
    [(100_000, "at most 65,536 characters"), (2_000_000, "header is 2,0.* at most 262,144")],
)
def test_a_long_metadata_string_is_refused_and_never_quoted_whole(saved, length, match):
    with pytest.raises(ValueError, match=match) as refused:
        load(_rewrite(saved, schedule="x" * length))
    assert len(str(refused.value)) < 400


def test_an_unknown_schedule_is_quoted_at_most_80_characters(saved):
    with pytest.raises(ValueError, match="unknown schedule 'yyyy") as refused:
        load(_rewrite(saved, schedule="y" * 5_000))
    assert "y" * 81 not in str(refused.value) and "…" in str(refused.value)


def test_an_oversized_header_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big_header.safetensors"
    text = b"{" + b" " * (300 * 2**10) + b"}"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(ValueError, match="header is 307,202 bytes"):
        load(path)


@pytest.mark.parametrize(
    ("config", "match"),
    [({"hidden": 4096, "depth": 40}, "shape|missing"), ({"hidden": 64, "depth": 4000}, "at most 64")],
)
def test_a_huge_config_in_a_tiny_file_is_refused_without_building_it(saved, config, match):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=match):
        load(_rewrite(saved, model=json.dumps(config)))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100 * 1024  # 4096 x 4096 x 40 float32 would be 2.7 GB


def test_messages_can_name_the_file_as_the_person_knows_it(tmp_path):
    path = tmp_path / "server-temp-1234.safetensors"
    path.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match=r"^my model\.safetensors is not") as refused:
        load(path, name="my model.safetensors")
    assert "server-temp" not in str(refused.value) and str(tmp_path) not in str(refused.value)
