"""Saving and loading trained models: one safetensors file, never a pickle.

The file holds the network's tensors; its safetensors metadata (string to string) holds

    format      "fmcore.FlowModel"     version   "1"
    model       ModelConfig as JSON     schedule  a key of SCHEDULES     prediction  e.g. "velocity"
    metadata    free JSON (training settings, the data normalisation)
    objective   a key of NETS: "flow" (v(z, t)), or "meanflow" (u(z, r, t)); absent in older files

so a single file travels. ``load`` reads the bytes once (after a size check), parses the header
itself for the metadata, lets safetensors decode the tensors, and checks names, shapes, dtypes and
values against the config before building anything. Every problem is a ``ValueError`` in plain words.
"""

from __future__ import annotations

import json
import os
import struct

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .models import NETS, FlowModel, ModelConfig, VelocityMLP
from .paths import PARAMETRISATIONS
from .schedules import SCHEDULES

__all__ = ["MAX_FILE_BYTES", "load", "save"]

FORMAT, VERSION = "fmcore.FlowModel", "1"
MAX_FILE_BYTES = 50 * 2**20
"""Models of this library are kilobytes to a few megabytes; anything larger is not one of them."""


def save(model: FlowModel, path, metadata: dict | None = None) -> None:
    """Write ``model`` (a ``FlowModel``, or anything with ``.flow``, e.g. a ``Trainer``) to ``path``.

    ``metadata``: extra JSON-able facts merged into the model's own (e.g. the data normalisation).
    """
    model = getattr(model, "flow", model)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.net.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_json(),
        "schedule": model.schedule.name,
        "prediction": model.prediction,
        "objective": model.objective,
        "metadata": json.dumps({**model.metadata, **(metadata or {})}, sort_keys=True),
    }
    with open(path, "wb") as f:
        f.write(save_tensors(tensors, metadata=metadata))


def _header_metadata(blob: bytes, name: str) -> dict:
    """The ``__metadata__`` of a safetensors header: 8-byte little-endian length, then JSON."""
    not_safetensors = f"{name} is not a safetensors model file"
    if len(blob) < 8:
        raise ValueError(f"{not_safetensors} (only {len(blob)} bytes)")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8:
        raise ValueError(f"{not_safetensors} (or it is truncated)")
    try:
        header = json.loads(blob[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{not_safetensors} (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{not_safetensors} (its header is not a JSON object)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{name} is a safetensors file but not an fmcore model (no fmcore metadata)")
    if metadata.get("version") != VERSION:
        raise ValueError(
            f"{name} has model format version {metadata.get('version')!r}; this fmcore reads {VERSION!r}"
        )
    return metadata


def _parse(metadata: dict, name: str):
    config = ModelConfig.from_json(metadata.get("model", ""))
    schedule, prediction = metadata.get("schedule"), metadata.get("prediction")
    objective = metadata.get("objective", "flow")
    if objective not in NETS:
        raise ValueError(f"{name}: unknown objective {objective!r} in its metadata")
    if schedule not in SCHEDULES:
        raise ValueError(f"{name}: unknown schedule {schedule!r} in its metadata")
    if prediction not in PARAMETRISATIONS:
        raise ValueError(f"{name}: unknown prediction {prediction!r} in its metadata")
    try:
        extra = json.loads(metadata.get("metadata", "{}"))
    except json.JSONDecodeError:
        raise ValueError(f"{name}: its free metadata is not JSON") from None
    if not isinstance(extra, dict):
        raise ValueError(f"{name}: its free metadata is not a JSON object")
    return config, schedule, prediction, objective, extra


def _check_tensors(tensors: dict, net: VelocityMLP, name: str):
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{name} does not match its config: missing tensors {missing}, unexpected {unexpected}"
        )
    for key, shape in expected.items():
        tensor = tensors[key]
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"{name}: tensor {key} has shape {tuple(tensor.shape)}, its config needs {shape}"
            )
        if not tensor.is_floating_point():
            raise ValueError(f"{name}: tensor {key} has dtype {tensor.dtype}, expected floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name}: tensor {key} contains NaN or infinite values")


def load(path, device=None) -> FlowModel:
    """Load a model written by ``save`` (or ``Trainer.save``), without unpickling anything.

    Args:
        path: a .safetensors file.  device: where to put the network (default CPU).
    Returns:
        A ``FlowModel`` with ``.velocity(z, t)``, ``.schedule``, ``.config``, ``.objective`` and
        ``.metadata`` (a mean-flow model also answers ``.average_velocity(z, r, t)``).
    Raises:
        ValueError: missing or unreadable file, larger than ``MAX_FILE_BYTES``, not safetensors,
            truncated, not an fmcore model, bad metadata, or tensors that do not fit the config.
    """
    name = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{name} is {size / 2**20:.1f} MB; models are at most {MAX_FILE_BYTES >> 20} MB")
        with open(path, "rb") as f:
            blob = f.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {name}: {error.strerror or error}") from None
    if len(blob) > MAX_FILE_BYTES:
        raise ValueError(f"{name} is larger than {MAX_FILE_BYTES >> 20} MB; models are smaller")
    config, schedule, prediction, objective, extra = _parse(_header_metadata(blob, name), name)
    try:
        tensors = load_tensors(blob)
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{name} is not a valid safetensors file ({error})") from None
    net = NETS[objective](config)
    _check_tensors(tensors, net, name)
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    net.requires_grad_(False)
    return FlowModel(net.to(device or "cpu"), schedule, prediction, metadata=extra)
