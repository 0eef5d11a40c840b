"""The network that learns a field on 2-D data: an MLP of (z, Fourier features of t).

    v_theta(z, t) = MLP([z, sin(pi f_k t), cos(pi f_k t)]_{k=1..n_freqs}),   f_k = 2^(k-1)

What the output means (a velocity, a noise prediction, ...) is the trainer's business; the network
only maps (n, d) points and a time to (n, d). Its size is chosen for live training on a laptop CPU:
see ``ModelConfig`` and ``bench/train_speed.py``. ``FlowModel`` wraps a trained network with its
schedule and parametrisation and answers ``velocity(z, t)`` for the solvers.

``AverageVelocityMLP`` is the same MLP with a second time: the MeanFlow average velocity
u_theta(z, r, t) over [r, t] (``fmcore.meanflow``), with features of t and of the interval t - r.
At r = t it is the instantaneous velocity, so ``net(z, t)`` means the same for both classes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .paths import PARAMETRISATIONS, convert
from .schedules import Schedule, get_schedule

__all__ = ["ACTIVATIONS", "NETS", "AverageVelocityMLP", "FlowModel", "ModelConfig", "VelocityMLP"]

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
    """

    dim: int = 2
    hidden: int = 64
    depth: int = 3
    n_freqs: int = 4
    activation: str = "silu"

    def __post_init__(self):
        for name in ("dim", "hidden", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ValueError(f"model {name} must be an integer from 1 to 4096; got {value!r}")
        if isinstance(self.n_freqs, bool) or not isinstance(self.n_freqs, int) or not 0 <= self.n_freqs <= 32:
            raise ValueError(f"model n_freqs must be an integer from 0 to 32; got {self.n_freqs!r}")
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
    """MLP field ``(z, t) -> (n, d)`` with a Fourier time embedding.

    Args:
        config: a ``ModelConfig`` (default: 3 hidden layers of 64, SiLU, 4 frequencies).
    """

    n_times = 1  # times embedded, each with 2 n_freqs features

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        self.register_buffer(
            "freqs", math.pi * 2.0 ** torch.arange(config.n_freqs, dtype=torch.float32), persistent=False
        )
        width_in = config.dim + 2 * config.n_freqs * self.n_times
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

    def forward(self, z: torch.Tensor, t) -> torch.Tensor:
        """Args: z (n, d); t a float, 0-d or (n,) tensor. Returns (n, d)."""
        return self.net(torch.cat([z, self.time_features(self._time(t, z), z.shape[0])], dim=1))

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

    def forward(self, z: torch.Tensor, t, r=None) -> torch.Tensor:
        """Args: z (n, d) states at time r; t, r floats, 0-d or (n,) tensors (r defaults to t).
        Returns (n, d)."""
        t = self._time(t, z)
        interval = torch.zeros_like(t) if r is None else t - self._time(r, z)
        n = z.shape[0]
        return self.net(torch.cat([z, self.time_features(t, n), self.time_features(interval, n)], dim=1))


NETS: dict[str, type[VelocityMLP]] = {"flow": VelocityMLP, "meanflow": AverageVelocityMLP}
"""The network of each training objective; the key is what model files record as ``objective``."""


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

    @torch.no_grad()
    def predict(self, z, t, kind: str = "velocity") -> torch.Tensor:
        """The field at (z, t) as ``kind`` (any of ``PARAMETRISATIONS``), converted from the net's output.

        Args:
            z: (n, d) points (any device, any float dtype).  t: float, 0-d or (n,); clamped to
                [0, schedule.t_max], the range the network was trained on.
        Returns:
            (n, d) float32 on the CPU.
        """
        device = self.device
        z = torch.as_tensor(z).to(device=device, dtype=torch.float32)
        t = torch.as_tensor(t, dtype=torch.float32).to(device).clamp(0.0, self.schedule.t_max)
        self.net.eval()
        out = self.net(z, t)
        if kind != self.prediction:
            out = convert(out, z, t, self.schedule, self.prediction, kind)
        return out.cpu()

    def velocity(self, z, t) -> torch.Tensor:
        """dz/dt at (z, t): ``predict(z, t, "velocity")``, ready for ``fmcore.integrate``."""
        return self.predict(z, t, "velocity")
