"""Saving and loading trained models: one safetensors file, never a pickle.

The file holds the network's tensors; its safetensors metadata (string to string) holds

    format      "fmcore.FlowModel"     version   "1"
    model       ModelConfig as JSON     schedule  a key of SCHEDULES     prediction  e.g. "velocity"
    metadata    free JSON (training settings, the data normalisation)
    guidance    labelled models only (``n_classes`` > 0 in ``model``): ``models.GUIDANCE``, how w is read
    objective   a key of NETS: "flow" (v(z, t)), or "meanflow" (u(z, r, t)); absent in older files

so a single file travels. ``load`` reads the bytes once (after a size check), parses the header
itself for the metadata, lets safetensors decode the tensors, and checks names, shapes, dtypes and
values against the config before building anything. Every problem is a ``ValueError`` in plain words.

A file may come from anyone (an upload), so everything in it is bounded before it is used: the
header's size, each metadata string's length, JSON nesting, and the network the config describes
(its shapes are worked out on torch's ``meta`` device, which allocates nothing, and must be the
tensors the file holds). Messages quote the file's contents at most ``quoting.QUOTE_CHARS`` long.
"""

from __future__ import annotations

import json
import os
import struct

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .models import GUIDANCE, NETS, FlowModel, ModelConfig, VelocityMLP
from .paths import PARAMETRISATIONS
from .quoting import quote
from .schedules import SCHEDULES

__all__ = [
    "MAX_DEPTH",
    "MAX_FIELD_CHARS",
    "MAX_FILE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "load",
    "save",
]

FORMAT, VERSION = "fmcore.FlowModel", "1"
MAX_FILE_BYTES = 50 * 2**20
"""Models of this library are kilobytes to a few megabytes; anything larger is not one of them."""
MAX_HEADER_BYTES = 256 * 2**10
"""A model's header (tensor table and metadata) is a few kB."""
MAX_FIELD_CHARS = 64 * 2**10
"""Longest metadata string (the free metadata JSON is the longest: the training settings)."""
MAX_JSON_DEPTH = 16
"""Deepest JSON nesting accepted in the header or metadata (real ones nest 2 or 3 deep)."""
MAX_DEPTH = 64
"""Most hidden layers a config may describe; the file size bounds the widths."""


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
        **({"guidance": GUIDANCE} if model.config.n_classes else {}),
    }
    with open(path, "wb") as f:
        f.write(save_tensors(tensors, metadata=metadata))


def _json_depth(value) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    return depth + 1
                stack.append((child, depth + 1))
        deepest = max(deepest, depth + (1 if isinstance(item, dict | list) else 0))
    return deepest


def _json(text: str, what: str, name: str):
    """``json.loads`` of a part of the file, refusing nesting deeper than ``MAX_JSON_DEPTH``."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError(f"{name}: {what} is not JSON, or nests too deeply") from None
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{name}: {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _header(blob: bytes, name: str) -> tuple[dict, dict]:
    """``(tensor table, __metadata__)`` of a safetensors header: 8-byte little-endian length, then JSON."""
    not_safetensors = f"{name} is not a safetensors model file"
    if len(blob) < 8:
        raise ValueError(f"{not_safetensors} (only {len(blob)} bytes)")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8:
        raise ValueError(f"{not_safetensors} (or it is truncated)")
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"{name}: its header is {size:,} bytes; a model's is at most {MAX_HEADER_BYTES:,}")
    try:
        text = blob[8 : 8 + size].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{not_safetensors} (its header is not JSON)") from None
    header = _json(text, "its header", name)
    if not isinstance(header, dict):
        raise ValueError(f"{not_safetensors} (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{name} is a safetensors file but not an fmcore model (no fmcore metadata)")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
            raise ValueError(
                f"{name}: metadata field {quote(key)} is not a string of at most {MAX_FIELD_CHARS:,} characters"
            )
    if metadata.get("version") != VERSION:
        raise ValueError(
            f"{name} has model format version {quote(metadata.get('version'))}; this fmcore reads {VERSION!r}"
        )
    return header, metadata


def _parse(metadata: dict, name: str):
    config = _json(metadata.get("model", ""), "its model config", name)
    if isinstance(config, dict) and isinstance(config.get("depth"), int) and config["depth"] > MAX_DEPTH:
        raise ValueError(
            f"{name}: its config asks for {config['depth']} layers; models have at most {MAX_DEPTH}"
        )
    config = ModelConfig.from_dict(config)
    schedule, prediction = metadata.get("schedule"), metadata.get("prediction")
    objective = metadata.get("objective", "flow")
    if objective not in NETS:
        raise ValueError(f"{name}: unknown objective {objective!r} in its metadata")
    if schedule not in SCHEDULES:
        raise ValueError(f"{name}: unknown schedule {quote(schedule)} in its metadata")
    if prediction not in PARAMETRISATIONS:
        raise ValueError(f"{name}: unknown prediction {quote(prediction)} in its metadata")
    if config.n_classes and metadata.get("guidance") != GUIDANCE:
        raise ValueError(
            f"{name}: a labelled model whose guidance convention is "
            f"{quote(metadata['guidance']) if 'guidance' in metadata else 'not stated'}; "
            f"this fmcore reads {GUIDANCE!r}"
        )
    extra = _json(metadata.get("metadata", "{}"), "its free metadata", name)
    if not isinstance(extra, dict):
        raise ValueError(f"{name}: its free metadata is not a JSON object")
    return config, schedule, prediction, objective, extra


def _check_table(table: dict, config: ModelConfig, objective: str, name: str) -> None:
    """The tensors the header lists must be those of the config's network, before anything is built.

    The network is laid out on the ``meta`` device (shapes only, no memory), so a config of huge
    layers in a tiny file costs nothing; tensors the header lists are bytes the file holds.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in NETS[objective](config).state_dict().items()}
    listed = {
        key: tuple(entry["shape"])
        if isinstance(entry, dict) and isinstance(entry.get("shape"), list)
        else None
        for key, entry in table.items()
    }
    _check_names(listed, expected, name)
    for key, shape in expected.items():
        if listed[key] != shape:
            raise ValueError(f"{name}: tensor {key} has shape {listed[key]}, its config needs {shape}")


def _check_names(tensors: dict, expected: dict, name: str) -> None:
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{name} does not match its config: missing tensors [{', '.join(map(quote, missing[:8]))}], "
            f"unexpected [{', '.join(map(quote, unexpected[:8]))}]"
        )


def _check_tensors(tensors: dict, net: VelocityMLP, name: str):
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    _check_names(tensors, expected, name)
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


def load(path, device=None, *, name: str | None = None) -> FlowModel:
    """Load a model written by ``save`` (or ``Trainer.save``), without unpickling anything.

    Args:
        path: a .safetensors file.  device: where to put the network (default CPU).
        name: what messages call the file (e.g. an upload's own name, not its temporary path);
            default the path.
    Returns:
        A ``FlowModel`` with ``.velocity(z, t)``, ``.schedule``, ``.config``, ``.objective`` and
        ``.metadata`` (a mean-flow model also answers ``.average_velocity(z, r, t)``).
    Raises:
        ValueError: missing or unreadable file, larger than ``MAX_FILE_BYTES``, not safetensors,
            truncated, not an fmcore model, bad or oversized metadata, a config beyond what the
            file holds, or tensors that do not fit the config.
    """
    name = os.fspath(path) if name is None else name
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
    table, metadata = _header(blob, name)
    config, schedule, prediction, objective, extra = _parse(metadata, name)
    _check_table(table, config, objective, name)
    try:
        tensors = load_tensors(blob)
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{name} is not a valid safetensors file ({error})") from None
    net = NETS[objective](config)
    _check_tensors(tensors, net, name)
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    net.requires_grad_(False)
    return FlowModel(net.to(device or "cpu"), schedule, prediction, metadata=extra)
