"""The sentences the runner shows a person, and the Trainer it builds for them."""

from __future__ import annotations

import dataclasses
import math

from explorer.settings import settings
from fmcore.trainer import Trainer, TrainStats

__all__ = ["build_trainer", "empty_stats", "sentence", "status_message"]


def build_trainer(data, spec: dict) -> Trainer:
    """A new Trainer, with every refusal turned into a ValueError that a person can read."""
    spec = dict(spec)
    spec.setdefault("device", settings().train_device)
    try:
        return Trainer(data, **spec)
    except ValueError:
        raise
    except TypeError as error:
        raise ValueError(f"invalid training option: {error}") from None
    except (KeyError, RuntimeError, OverflowError) as error:
        raise ValueError(f"could not set up training: {sentence(error)}") from None


def empty_stats(last: TrainStats | None, message: str) -> TrainStats:
    """Stats for a tick that trained nothing, carrying ``message``."""
    if last is not None:
        return dataclasses.replace(last, loss=math.nan, steps_per_s=0.0, status="ok", message=message)
    return TrainStats(
        step=0, loss=math.nan, elapsed=0.0, steps_per_s=0.0, lr=math.nan, status="ok", message=message
    )


def status_message(stats: TrainStats) -> str:
    if stats.status == "diverged":
        return f"{sentence(stats.message or 'training diverged')} Training is paused: lower the learning rate or press reset."
    if stats.status == "done":
        return f"Finished: {stats.message or 'the step limit was reached'}."
    return sentence(stats.message or f"training stopped ({stats.status})")


def sentence(error) -> str:
    text = str(error).strip() or type(error).__name__
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
