"""The FME_* variables: read in one place, validated with messages that name the variable."""

from pathlib import Path

import pytest
import torch

from explorer import settings as settings_module
from explorer.settings import Settings, read


def test_an_empty_environment_gives_the_defaults():
    assert read({}) == Settings()
    assert read({"FME_TRAINING": "  ", "FME_TORCH_THREADS": ""}) == Settings()


def test_every_variable_is_read():
    env = {
        "FME_TRAINING": " Inline ",
        "FME_ENGINE_SLOTS": "3",
        "FME_TRAIN_DEVICE": "cpu",
        "FME_TRAIN_NICE": "0",
        "FME_RAY_ADDRESS": "ray://head:10001",
        "FME_TORCH_THREADS": "2",
        "FME_ROOMS_URL": "redis://127.0.0.1:6379/0",
        "FME_DATA_DIR": "/tmp/fme",
    }
    assert read(env) == Settings(
        training="inline",
        engine_slots=3,
        train_device="cpu",
        train_nice=0,
        ray_address="ray://head:10001",
        torch_threads=2,
        rooms_url="redis://127.0.0.1:6379/0",
        data_dir=Path("/tmp/fme"),
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FME_TRAINING", "gpu", "FME_TRAINING must be one of inline, engine"),
        ("FME_ENGINE_SLOTS", "two", "FME_ENGINE_SLOTS must be a whole number"),
        ("FME_ENGINE_SLOTS", "0", "FME_ENGINE_SLOTS must be at least 1"),
        ("FME_TORCH_THREADS", "1.5", "FME_TORCH_THREADS must be a whole number"),
        ("FME_TORCH_THREADS", "0", "FME_TORCH_THREADS must be at least 1"),
    ],
)
def test_a_malformed_variable_is_named_in_the_error(name, value, message):
    with pytest.raises(ValueError, match=message):
        read({name: value})


def test_settings_are_read_once_and_torch_threads_honour_the_variable(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("FME_TORCH_THREADS", "2")
    assert settings_module.settings().torch_threads == 2
    monkeypatch.setenv("FME_TORCH_THREADS", "3")
    assert settings_module.settings().torch_threads == 2  # read once
    try:
        settings_module.configure_torch()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        settings_module.configure_torch()  # once per process: a second call changes nothing
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
