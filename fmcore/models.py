"""The network that learns a field on 2-D data: an MLP of (z, Fourier features of z and of t).

    v_theta(z, t) = MLP([z, sin(pi f_k t), cos(pi f_k t), sin(pi f_j z), cos(pi f_j z)]),
    f_k = 2^(k-1),  k = 1..n_freqs,  j = 1..z_freqs (on each coordinate of z; none in a bare ModelConfig)

The features of z (Tancik et al., 2020, "Fourier features let networks learn high frequency
functions") let a small MLP bend its field on the scale of thin structures (rings 0.04 wide, 0.5
apart, in unit-scale coordinates) that a plain MLP of z learns only slowly (spectral bias). The
same bias is what makes the plain MLP generalise: with the features it also fits a small training
set's own points sooner (memorises), which is why the Trainer turns them on by default only for
data of 1,000 points or more (``fmcore.trainer.data_defaults``).

A label-conditioned net (``n_classes`` > 0) also reads a one-hot label c in 0 .. n_classes, where
c = n_classes is the null label ("no class": the unconditional field, learned by label dropout).
A one-hot input is a learned per-class offset of the first layer, i.e. a label embedding.
Classifier-free guidance (Ho & Salimans, 2022) mixes the two fields; ``GUIDANCE`` states how w is
read here, and the saved files carry it:

    v_w(z, t | c) = v(z, t | null) + w (v(z, t | c) - v(z, t | null)),   w = 1: conditional, w = 0: unconditional.

What the output means (a velocity, a noise prediction, ...) is the trainer's business; the network
only maps (n, d) points and a time to (n, d). Its size is chosen for live training on a laptop CPU:
see ``ModelConfig`` and ``bench/train_speed.py``. ``FlowModel`` wraps a trained network with its
schedule and parametrisation and answers ``velocity(z, t)`` for the solvers.

``AverageVelocityMLP`` is the same MLP with a second time: the MeanFlow average velocity
u_theta(z, r, t) over [r, t] (``fmcore.meanflow``), with features of t and of the interval t - r.
At r = t it is the instantaneous velocity, so ``net(z, t)`` means the same for both classes.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .paths import PARAMETRISATIONS, convert
from .schedules import Schedule, get_schedule

__all__ = [
    "ACTIVATIONS",
    "GUIDANCE",
    "MAX_CLASSES",
    "NETS",
    "AverageVelocityMLP",
    "FlowModel",
    "ModelConfig",
    "VelocityMLP",
]

GUIDANCE = "v_null + w (v_c - v_null); w=1 conditional, w=0 unconditional, null label = n_classes"
"""The classifier-free guidance convention, word for word as saved with a labelled model."""
MAX_CLASSES = 256

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``VelocityMLP``; round-trips through JSON with ``to_json`` / ``from_json``.

    Attributes:
        dim: data dimension d.  hidden: width of each hidden layer.  depth: number of hidden layers.
        n_freqs: Fourier frequencies of t (2 * n_freqs features).  activation: a key of ``ACTIVATIONS``.
        z_freqs: Fourier frequencies of each coordinate of z (2 * dim * z_freqs features); 0, the
            default, is the net of files saved before the option existed.
        n_classes: labels the field is conditioned on (0 .. n_classes - 1, plus the null label
            n_classes); 0 = unconditional.
    """

    dim: int = 2
    hidden: int = 64
    depth: int = 3
    n_freqs: int = 4
    activation: str = "silu"
    n_classes: int = 0
    z_freqs: int = 0

    def __post_init__(self):
        for name in ("dim", "hidden", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ValueError(f"model {name} must be an integer from 1 to 4096; got {value!r}")
        for name in ("n_freqs", "z_freqs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 32:
                raise ValueError(f"model {name} must be an integer from 0 to 32; got {value!r}")
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int):
            raise ValueError(f"model n_classes must be an integer; got {self.n_classes!r}")
        if not 0 <= self.n_classes <= MAX_CLASSES:
            raise ValueError(f"model n_classes must be from 0 to {MAX_CLASSES}; got {self.n_classes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Build from a dict; unknown keys or bad values raise ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object; got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"model config is not valid JSON ({error})") from None
        return cls.from_dict(d)


class VelocityMLP(nn.Module):
    """MLP field ``(z, t) -> (n, d)`` with Fourier embeddings of the time and (optionally) of z.

    Args:
        config: a ``ModelConfig`` (default: 3 hidden layers of 64, SiLU, 4 time frequencies, z raw).
    """

    n_times = 1  # times embedded, each with 2 n_freqs features

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        self.register_buffer(
            "freqs", math.pi * 2.0 ** torch.arange(config.n_freqs, dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "z_freqs", math.pi * 2.0 ** torch.arange(config.z_freqs, dtype=torch.float32), persistent=False
        )
        width_in = (
            config.dim * (1 + 2 * config.z_freqs)
            + 2 * config.n_freqs * self.n_times
            + (config.n_classes + 1 if config.n_classes else 0)
        )
        layers: list[nn.Module] = []
        for _ in range(config.depth):
            layers += [nn.Linear(width_in, config.hidden), ACTIVATIONS[config.activation]()]
            width_in = config.hidden
        layers.append(nn.Linear(width_in, config.dim))
        self.net = nn.Sequential(*layers)

    def time_features(self, t: torch.Tensor, n: int) -> torch.Tensor:
        """(n, 2 n_freqs) features ``[sin(pi f_k t), cos(pi f_k t)]`` of a 0-d or (n,) time."""
        angles = t.reshape(-1, 1) * self.freqs
        features = torch.cat([angles.sin(), angles.cos()], dim=1)
        return features.expand(n, -1) if features.shape[0] == 1 else features

    def space_features(self, z: torch.Tensor) -> torch.Tensor:
        """(..., 2 d z_freqs) features ``[sin(pi f_j z), cos(pi f_j z)]`` of (..., d) points."""
        angles = (z[..., None] * self.z_freqs).flatten(-2)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def label_features(self, label, n: int, device) -> torch.Tensor:
        """(n, n_classes + 1) one-hot rows of an int or (n,) label; None is the null label."""
        k = self.config.n_classes
        label = torch.as_tensor(k if label is None else label, dtype=torch.int64, device=device)
        if label.dim() > 1 or (label.dim() == 1 and label.shape[0] != n):
            raise ValueError(f"label must be an int or have shape ({n},); got {tuple(label.shape)}")
        if bool(((label < 0) | (label > k)).any()):
            raise ValueError(f"labels must lie in 0 .. {k - 1} (or {k}, the null label)")
        return torch.nn.functional.one_hot(label.expand(n), k + 1).float()

    def forward(self, z: torch.Tensor, t, label=None) -> torch.Tensor:
        """Args: z (n, d); t a float, 0-d or (n,) tensor; label (conditional nets only) an int or
        (n,) int64 tensor, None for the null label. Returns (n, d)."""
        inputs = [z, self.time_features(self._time(t, z), z.shape[0])]
        if self.config.z_freqs:
            inputs.append(self.space_features(z))
        if self.config.n_classes:
            inputs.append(self.label_features(label, z.shape[0], z.device).to(z.dtype))
        elif label is not None:
            raise ValueError("this model is unconditional (n_classes=0): it takes no label")
        return self.net(torch.cat(inputs, dim=1))

    @staticmethod
    def _time(t, z: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] not in (1, z.shape[0])):
            raise ValueError(f"t must be a scalar or have shape ({z.shape[0]},); got {tuple(t.shape)}")
        return t


class AverageVelocityMLP(VelocityMLP):
    """MLP average velocity ``(z, t, r) -> (n, d)`` of MeanFlow, with Fourier features of t and t - r.

    ``u(z, r, t)`` is the mean of the velocity over [r, t] along the path that passes through z at
    time r, so that ``z_t = z_r + (t - r) u(z_r, r, t)``. With ``r`` omitted (r = t) it is the
    instantaneous velocity v(z, t), which is how ``FlowModel`` and the ODE solvers read it.

    Args:
        config: a ``ModelConfig``, as for ``VelocityMLP`` (the first layer takes 4 n_freqs features).
    """

    n_times = 2

    def __init__(self, config: ModelConfig | None = None):
        if config is not None and config.n_classes:
            raise ValueError("a mean-flow network is unconditional: it takes no labels (n_classes=0)")
        super().__init__(config)

    def forward(self, z: torch.Tensor, t, r=None) -> torch.Tensor:
        """Args: z (n, d) states at time r; t, r floats, 0-d or (n,) tensors (r defaults to t).
        Returns (n, d)."""
        t = self._time(t, z)
        interval = torch.zeros_like(t) if r is None else t - self._time(r, z)
        n = z.shape[0]
        inputs = [z, self.time_features(t, n), self.time_features(interval, n)]
        if self.config.z_freqs:
            inputs.append(self.space_features(z))
        return self.net(torch.cat(inputs, dim=1))


NETS: dict[str, type[VelocityMLP]] = {"flow": VelocityMLP, "meanflow": AverageVelocityMLP}
"""The network of each training objective; the key is what model files record as ``objective``."""


def _grad_only_through_inputs(predict):
    """No autograd graph through the weights; one through ``z`` when the caller asks for it.

    The solvers need no graph, but the log-likelihood differentiates v(z, t) with respect to z
    (its divergence): under a plain ``torch.no_grad`` that raised "element 0 of tensors does not
    require grad".
    """

    @functools.wraps(predict)
    def wrapped(self, z, t, *args, **kwargs):
        wants_grad = torch.is_grad_enabled() and isinstance(z, torch.Tensor) and z.requires_grad
        with torch.set_grad_enabled(wants_grad):
            return predict(self, z, t, *args, **kwargs)

    return wrapped


class FlowModel:
    """A trained network read as a field of the path: what the solvers, the CLI and ``load`` use.

    Args:
        net: a ``VelocityMLP`` (on any device).  schedule: the path it was trained on (name or object).
        prediction: what the network outputs, an entry of ``PARAMETRISATIONS`` ("velocity" for flow
            matching, "noise" for the diffusion baseline).  metadata: free JSON-able facts (training
            settings, the data normalisation) carried along by ``save``.
    """

    def __init__(
        self,
        net: VelocityMLP,
        schedule: str | Schedule,
        prediction: str = "velocity",
        metadata: dict | None = None,
    ):
        if prediction not in PARAMETRISATIONS:
            raise ValueError(
                f"unknown prediction {prediction!r}; choose one of {', '.join(PARAMETRISATIONS)}"
            )
        if isinstance(net, AverageVelocityMLP) and prediction != "velocity":
            raise ValueError(f"a mean-flow network predicts average velocities, not {prediction!r}")
        self.net, self.schedule, self.prediction = net, get_schedule(schedule), prediction
        self.metadata = dict(metadata or {})

    @property
    def config(self) -> ModelConfig:
        return self.net.config

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def n_classes(self) -> int:
        """Labels the field is conditioned on; 0 for an unconditional model."""
        return self.config.n_classes

    @property
    def objective(self) -> str:
        """The ``NETS`` key of the network: "meanflow" for an average-velocity model, else "flow"."""
        return next((name for name, cls in NETS.items() if type(self.net) is cls), "flow")

    @torch.no_grad()
    def average_velocity(self, z, r, t) -> torch.Tensor:
        """A mean-flow model's average velocity u(z, r, t) over [r, t], z (n, d) at time r.

        Args:
            z: (n, d) points.  r, t: floats, 0-d or (n,); clamped to [0, schedule.t_max].
        Returns:
            (n, d) float32 on the CPU.
        Raises:
            ValueError: the network is a flow model (it knows only the instantaneous velocity).
        """
        if self.objective != "meanflow":
            raise ValueError("this is a flow model: it has no average velocity; sample it with integrate()")
        device = self.device
        z = torch.as_tensor(z).to(device=device, dtype=torch.float32)
        r, t = (
            torch.as_tensor(x, dtype=torch.float32).to(device).clamp(0.0, self.schedule.t_max) for x in (r, t)
        )
        self.net.eval()
        return self.net(z, t, r=r).cpu()

    @_grad_only_through_inputs
    def predict(self, z, t, kind: str = "velocity", label=None) -> torch.Tensor:
        """The field at (z, t) as ``kind`` (any of ``PARAMETRISATIONS``), converted from the net's output.

        Args:
            z: (n, d) points (any device, any float dtype).  t: float, 0-d or (n,); clamped to
                [0, schedule.t_max], the range the network was trained on.
            label: for a labelled model, an int or (n,) class; None is the null label.
        Returns:
            (n, d) float32 on the CPU.
        """
        device = self.device
        z = torch.as_tensor(z).to(device=device, dtype=torch.float32)
        t = torch.as_tensor(t, dtype=torch.float32).to(device).clamp(0.0, self.schedule.t_max)
        self.net.eval()
        out = self.net(z, t, label) if self.n_classes else self.net(z, t)
        if kind != self.prediction:
            out = convert(out, z, t, self.schedule, self.prediction, kind)
        return out.cpu()

    def velocity(self, z, t, label=None) -> torch.Tensor:
        """dz/dt at (z, t): ``predict(z, t, "velocity", label)``, ready for ``fmcore.integrate``."""
        return self.predict(z, t, "velocity", label)

    def guided_velocity(self, label: int | None, guidance: float = 1.0):
        """Classifier-free guided field ``v_w = v(z,t|null) + w (v(z,t|c) - v(z,t|null))``.

        w = 1 is the conditional field v(z,t|c), w = 0 the unconditional one, w > 1 extrapolates
        past the conditional field, away from the unconditional one. ``label=None`` is the
        unconditional field (any w).

        Args:
            label: a class 0 .. n_classes - 1, or None.  guidance: w, a finite number.
        Returns:
            ``v(z, t)`` for ``fmcore.integrate``: z (n, d), t 0-d, (n, d) out. For w other than 0
            and 1 each call runs the network once on a doubled batch (c rows and null rows).
        Raises:
            ValueError: an unconditional model given a label, a label out of range, a bad w.
        """
        if (
            isinstance(guidance, bool)
            or not isinstance(guidance, numbers.Real)
            or not math.isfinite(guidance)
        ):
            raise ValueError(f"guidance must be a finite number; got {guidance!r}")
        if label is not None:
            self._check_label(label)
        if label is None or guidance == 0:
            return lambda z, t: self.velocity(z, t, None)
        if guidance == 1:
            return lambda z, t: self.velocity(z, t, label)

        def guided(z, t):
            n = z.shape[0]
            rows = torch.cat([torch.full((n,), label), torch.full((n,), self.n_classes)])
            t = torch.as_tensor(t)
            both = self.velocity(torch.cat([z, z]), torch.cat([t, t]) if t.dim() == 1 else t, rows)
            v_c, v_null = both[:n], both[n:]
            return v_null + guidance * (v_c - v_null)

        return guided

    def _check_label(self, label):
        if self.n_classes == 0:
            raise ValueError("this model is unconditional: train it with labels to sample a class")
        if (
            isinstance(label, bool)
            or not isinstance(label, numbers.Integral)
            or not 0 <= label < self.n_classes
        ):
            raise ValueError(f"label must be a class from 0 to {self.n_classes - 1}; got {label!r}")
