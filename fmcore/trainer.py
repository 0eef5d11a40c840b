"""Flow matching training in resumable slices: ``Trainer.step(n)``.

Each step draws data z_1, noise z_0 (paired by a coupling) and times t ~ U[0, t_max], forms
``z_t = alpha_t z_1 + sigma_t z_0`` and regresses the network on a target at (z_t, t):

* ``target="conditional"``: the conditional velocity ``u_t(z_t | z_1) = d_alpha z_1 + d_sigma z_0``
  (Lipman et al., 2023). Its loss keeps an irreducible part, ``loss_floor``.
* ``target="marginal"``: the exact marginal field ``u_t(z_t)`` of the empirical data set
  (``fmcore.exact``). Same minimiser, no target noise, so the loss can go to 0 (floor 0); each step
  costs O(batch x m). With ``reference="batch"`` the posterior is taken over the batch's own data
  points instead (the "stable target field" of Xu et al., 2023): still the same minimiser, at
  O(batch^2), with a small floor left.

The loss is ``mean_i |v_theta(z_t, t) - target_i|^2`` (squared norm per point, averaged over the batch),
in the network's parametrisation (``prediction``: "velocity", or "noise" for the diffusion baseline).

Speed (``bench/train_speed.py``): what makes a 2 s run good on a CPU is a high learning rate with an
average of the weights (a power-function EMA whose window grows with training, ``Trainer.ema_decay``),
which ``velocity`` samples with; a 3 x 64 MLP at batch 256 does about 1,000 steps/s on one thread.
The Trainer never changes ``torch.set_num_threads`` (process-wide): the CLI, the benchmark and
worker processes set it to 1, which is faster than 2 for this size.

``objective="meanflow"`` trains an average velocity u(z, r, t) instead (``fmcore.meanflow``): each
step draws pairs r <= t, forms z_r and the chosen target's velocity at (z_r, r), and regresses on
the MeanFlow identity; ``history`` then holds the plain squared error of that regression.

Divergence is caught every ``check_every`` steps: a non-finite loss, a loss above ``LOSS_LIMIT`` or
``EXPLOSION_FACTOR`` times the recent median, or a weight above ``WEIGHT_LIMIT`` stops training and
restores the last healthy snapshot (taken at every healthy check).
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import counter_rng
from .coupling import COUPLINGS
from .exact import T_EXACT_MAX, exact_posterior_mean
from .io import save as save_model
from .meanflow import meanflow_loss, sample_times
from .models import MAX_CLASSES, NETS, FlowModel, ModelConfig, VelocityMLP
from .paths import from_endpoints
from .schedules import SCHEDULES, Schedule, get_schedule

__all__ = [
    "DEFAULTS",
    "OBJECTIVES",
    "OBJECTIVE_DEFAULTS",
    "TARGETS",
    "Batch",
    "TrainStats",
    "Trainer",
    "pick_device",
]

OBJECTIVES = tuple(NETS)
OBJECTIVE_DEFAULTS: dict[str, dict] = {
    "flow": {"target": "conditional"},
    # bench/meanflow.py: the batch's posterior velocity (Xu et al.'s stable target) is what makes the
    # bootstrapped target learnable in a minute; a lower lr and a longer EMA steady the one-step map
    # (measured, like the lesson, on the plain MLP of z: no z features whatever the data size).
    "meanflow": {"target": "marginal", "reference": "batch", "lr": 5e-3, "ema": 0.999, "z_freqs": 0},
}
"""Per objective: the default target and the options it changes from ``DEFAULTS``."""
TARGETS = ("conditional", "marginal")
PREDICTIONS = ("velocity", "noise")
LR_SCHEDULES = ("constant", "cosine")
REFERENCES = ("data", "batch")

DEFAULTS: dict = {
    "lr": 1e-2,  # high, made safe by the EMA below; bench/train_speed.py measured it against 1e-3 and 3e-3
    "batch_size": 256,
    "hidden": 64,
    "depth": 3,
    "n_freqs": 4,
    "z_freqs": None,  # Fourier octaves of z (models.py); None: chosen from the data, ``data_defaults``
    "activation": "silu",
    "ema": 0.999,  # the EMA's largest decay (its longest memory, ~1 / (1 - ema) steps); 0: raw weights
    "ema_power": 8,  # gamma of the power-function EMA under that cap (``Trainer.ema_decay``)
    "lr_schedule": "constant",  # or "cosine": lr -> lr * lr_final over lr_horizon steps, then constant
    "lr_horizon": 2000,
    "lr_final": 0.1,
    "max_steps": None,  # None: train until told to stop
    "prediction": "velocity",
    "reference": "data",  # marginal target only: posterior over the whole data set, or the batch
    "check_every": 50,
    "label_dropout": 0.1,  # with labels: share of each batch trained on the null label (the unconditional field)
}
"""The Trainer's options (``validate_options``). Why ``ema`` 0.999 and ``ema_power`` 8: at the constant
lr of 1e-2 the weights keep jumping, and the average of them is what the app samples and shows. The
power-function EMA (Karras et al. 2024, EDM2, sec. 3.1) averages over a window that grows with
training and needs no horizon (the app trains with none): after t steps its lag (the distance of its
centre of mass from step t) is about t / (gamma + 2) = t / 10 steps: ~90 steps at 1 s of training
(~900 steps), ~450 at 5 s (~4,500), and from ~9,000 steps on the cap holds it at ~1,000 (about 1 s
of training), so a live picture still follows a changed learning rate. The old rule, 0.99 with a
(t+1)/(t+10) warm-up, was about this one with gamma 8 capped at a ~100-step window; with gamma 8,
the caps 0.99 and 0.999 give the same decays up to step 896, so the first 0.5 s checkpoint cannot
move (moons: at the floor at 0.5 s in both).
Measured (``bench/train_speed.py --all-presets --clock cpu --seeds 3 --against '{"ema": 0.99}'``,
each quality the mean of 4 evaluation draws, load 5-11 on 2 CPUs, so ~2,900-4,900 steps in 5 s): the
worst quality of any preset and seed 1.90 (circles) vs 3.21 with the 0.99 cap, smiley's worst 1.51
vs 2.89, rings' seed 0 0.44 vs 1.21, the mean of the ten medians 0.46 vs 0.66; no seed above 2 whose
memorised training set is below it, vs smiley seed 2 with the cap. The median first 0.5 s checkpoint
at the floor: moons 0.5 s in both, rings 1.5 vs 2.5 s, smiley 1.5 vs 1.0 s, line 1.0 vs 0.5 s,
checkerboard 1.5 vs 1.0 s, circles never (two of its training sets are 1.5 and 2.1 floors off) vs
3.5 s: a longer window weighs older weights a little longer."""

Z_FREQS = 4
Z_FREQS_MIN_POINTS = 1000
"""The data-dependent default of ``z_freqs`` (``data_defaults``): Z_FREQS octaves of z for data of at
least Z_FREQS_MIN_POINTS points, none below. The features let the net bend its field on the scale of
thin structures (the smiley's outline, rings, circles), which a plain MLP of z learns slowly; the same
reach lets it copy a small training set's own points (``bench/train_speed.py --memorisation``).
Measured at 5 s of CPU training, seeds 0-2, against z_freqs=0 in the same run
(``bench/train_speed.py --all-presets --clock cpu --against '{"z_freqs": 0}'``, load 10 on 2 CPUs):
median quality smiley 1.97 vs 2.83, pinwheel 2.61 vs 3.70; first 0.5 s checkpoint at the floor
(median) moons 0.5 s vs 1.5 s, circles 1.5 vs 3.5, rings 1.0 vs 3.5, swissroll 0.5 vs 1.5. On
moons' own training set of 60 points their samples land near a training point 6.1x as often as
fresh data's do, vs 1.65x without; 250 points: 1.69x vs 1.14x; 1,000: 0.97x vs 0.95x."""

LOSS_LIMIT = 1e6
EXPLOSION_FACTOR = 1e3
WEIGHT_LIMIT = 1e6
MEDIAN_WINDOW = 500
FLOOR_SAMPLES = 4096
FLOOR_SEED = 12345
STATE_FORMAT = "fmcore.Trainer/2"  # /2: the random stream is a counter-based key and counter
DRAW_ROWS = {"cpu": 2**16}
"""Batch rows drawn at once per device type (others: ``DRAW_ROWS_ELSEWHERE``): ``draws_ahead``."""
DRAW_ROWS_ELSEWHERE = 2**20
MAX_AHEAD = 64


@dataclass(frozen=True)
class TrainStats:
    """What one ``step(n)`` call saw.

    Attributes:
        step: total steps taken so far.  loss: mean loss over this call's steps (nan if none).
        elapsed: total training seconds (inside ``step`` only).  steps_per_s: this call's throughput.
        lr: the learning rate now.  status: "ok", "diverged" or "done" (max_steps reached).
        message: plain words for the user; empty when ok.
    """

    step: int
    loss: float
    elapsed: float
    steps_per_s: float
    lr: float
    status: str
    message: str


@dataclass(frozen=True)
class Batch:
    """One step's draw (``Trainer.draw``), the coupling applied; ``batches`` gives K of them at
    once, each field with a leading (K,) axis.

    Attributes:
        t: (n,) times in [0, t_max].  z_1: (n, d) data rows.  z_0: (n, d) noise paired with them.
        labels: (n,) int64 classes (the null label ``n_classes`` on the dropped share), or None.
    """

    t: torch.Tensor
    z_1: torch.Tensor
    z_0: torch.Tensor
    labels: torch.Tensor | None


def draw_layout(labelled: bool, objective: str = "flow") -> tuple[int, int]:
    """(uniforms, normals) per batch row besides its data row, in this order: t, the label dropout's
    uniform (labelled), the mean flow's r = t uniform (meanflow); the d noise normals z_0 are
    added by the caller, then the mean flow's two time logits. ``BatchTrainer`` draws the same."""
    return 1 + labelled + (objective == "meanflow"), 2 * (objective == "meanflow")


def draws_ahead(streams: int, n: int, device: torch.device) -> int:
    """How many consecutive counters of each of ``streams`` streams to draw at once (1 to
    ``MAX_AHEAD``): the draws are a pure function of the counter, so drawing the next steps' batches
    in one call changes no number, and shares the per-op cost of the generator among them, up to
    ``DRAW_ROWS`` rows (on a CPU more rows fall out of cache; elsewhere, memory)."""
    rows = DRAW_ROWS.get(device.type, DRAW_ROWS_ELSEWHERE)
    return max(1, min(MAX_AHEAD, rows // (streams * n)))


def batches(
    rows: torch.Tensor,
    uniforms: torch.Tensor,
    z_0: torch.Tensor,
    data: torch.Tensor,
    t_max: torch.Tensor | float,
    labels: torch.Tensor | None = None,
    label_dropout: torch.Tensor | float = 0.0,
    null: int = 0,
) -> Batch:
    """K batches from their draws (``counter_rng.draw`` with ``draw_layout``), before any coupling;
    without the leading (K,) axis (and with floats for t_max and label_dropout), one batch.

    Args:
        rows: (K, n) int64 rows of ``data`` (each stream's offset into it already added).
        uniforms: (K, n, u) float32 in [0, 1), ``draw_layout``'s order.  z_0: (K, n, d) normals.
        data: (M, d) the data of all K streams, one after another.  t_max: float or (K, 1).
        labels: (M,) int64 classes of ``data``, or None.  label_dropout: float or (K, 1) share of
        rows given the ``null`` label.
    Returns:
        ``Batch`` with t (K, n), z_1 and z_0 (K, n, d), labels (K, n) or None.
    """
    z_1 = data.index_select(0, rows.reshape(-1)).view(*rows.shape, data.shape[1])  # faster than data[rows]
    t = uniforms[..., 0] * t_max
    if labels is None:
        return Batch(t, z_1, z_0, None)
    return Batch(t, z_1, z_0, torch.where(uniforms[..., 1] < label_dropout, null, labels.take(rows)))


def pick_device(device=None) -> torch.device:
    """``device`` as a ``torch.device``; None picks cuda, then mps, then cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_option(name: str, value):
    """Raise ``ValueError`` if ``value`` is not valid for option ``name``."""

    def need(ok: bool, what: str):
        if not ok:
            raise ValueError(f"option {name} must be {what}; got {value!r}")

    if name == "lr":
        need(_is_real(value) and math.isfinite(value) and value > 0, "a finite number > 0")
    elif name in ("batch_size", "hidden", "depth", "lr_horizon", "check_every"):
        need(_is_int(value) and 1 <= value <= 1_000_000, "an integer >= 1")
    elif name == "n_freqs":
        need(_is_int(value) and 0 <= value <= 32, "an integer from 0 to 32")
    elif name == "z_freqs":
        need(
            value is None or (_is_int(value) and 0 <= value <= 32),
            "None (from the data) or an integer from 0 to 32",
        )
    elif name == "activation":
        ModelConfig(activation=value)
    elif name == "ema":
        need(_is_real(value) and 0 <= value < 1, "a number in [0, 1)")
    elif name == "ema_power":
        need(_is_real(value) and 0 <= value <= 1000, "a number from 0 to 1000")
    elif name == "lr_final":
        need(_is_real(value) and 0 < value <= 1, "a number in (0, 1]")
    elif name == "max_steps":
        need(value is None or (_is_int(value) and value >= 0), "None or an integer >= 0")
    elif name == "lr_schedule":
        need(value in LR_SCHEDULES, f"one of {', '.join(LR_SCHEDULES)}")
    elif name == "prediction":
        need(value in PREDICTIONS, f"one of {', '.join(PREDICTIONS)}")
    elif name == "reference":
        need(value in REFERENCES, f"one of {', '.join(REFERENCES)}")
    elif name == "label_dropout":
        need(_is_real(value) and 0 <= value < 1, "a number in [0, 1)")


def validate_options(options: dict) -> dict:
    """DEFAULTS updated with ``options``; unknown names or bad values raise ``ValueError``."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **options}
    for name, value in merged.items():
        _check_option(name, value)
    return merged


def data_defaults(options: dict, m: int) -> dict:
    """``options`` with the defaults that depend on the data (those left None) chosen for m points:
    ``z_freqs`` is Z_FREQS from Z_FREQS_MIN_POINTS points on, else 0. The Trainer keeps the chosen
    values in ``options``, so its ``config``, ``state_dict`` and saved files carry them."""
    if options["z_freqs"] is not None:
        return options
    return {**options, "z_freqs": Z_FREQS if m >= Z_FREQS_MIN_POINTS else 0}


def _as_points(x, name: str) -> torch.Tensor:
    try:
        points = torch.as_tensor(np.asarray(x.cpu() if torch.is_tensor(x) else x, dtype=np.float32))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an (m, d) array of numbers ({error})") from None
    if points.dim() != 2 or points.shape[0] < 1 or points.shape[1] < 1:
        raise ValueError(f"{name} must have shape (m, d) with m >= 1; got {tuple(points.shape)}")
    if not bool(torch.isfinite(points).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return points


def _as_labels(y, m: int) -> torch.Tensor:
    """(m,) int64 classes 0 .. K-1 for the m data points, as a CPU tensor."""
    try:
        array = np.asarray(y.cpu() if torch.is_tensor(y) else y)
    except (TypeError, ValueError) as error:
        raise ValueError(f"labels must be an (m,) array of integers ({error})") from None
    if array.shape != (m,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"labels must be {m} integers, one per data point; got {array.dtype} of shape {array.shape}"
        )
    if array.min() < 0 or array.max() >= MAX_CLASSES:
        raise ValueError(f"labels must lie in 0 .. {MAX_CLASSES - 1}; got {array.min()} .. {array.max()}")
    return torch.as_tensor(array, dtype=torch.int64)


def _schedule_name(schedule) -> str:
    s = get_schedule(schedule)
    if repr(SCHEDULES.get(s.name)) != repr(s):
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (by name); got {s!r}")
    return s.name


def _to_cpu(obj):
    """A copy of a nested dict/list of tensors with every tensor cloned onto the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class Trainer:
    """Trains a ``VelocityMLP`` by flow matching, ``n`` steps at a time.

    Args:
        data: (m, d) data z_1, already normalised (about unit scale, like the noise).
        schedule: a name in ``fmcore.SCHEDULES``; t is drawn uniformly in [0, schedule.t_max].
        target: "conditional" or "marginal" (see the module docstring); None: the objective's
            default in ``OBJECTIVE_DEFAULTS``.
        coupling: a key of ``fmcore.COUPLINGS`` ("independent", "ot").
        seed: fixes the initial weights and every draw; same seed, same losses (on the CPU).
        device: None picks cuda, then mps, then cpu.
        noise: optional (m, d) z_0 paired row by row with ``data`` (reflow's fixed couplings);
            batches then draw rows of both, and target and coupling must be the defaults.
        labels: optional (m,) integer class of each data point, 0 .. K-1 with K = max + 1: trains
            the label-conditioned field v(z, t | c) and, on a ``label_dropout`` share of each batch,
            the null label's unconditional field (classifier-free guidance: ``guided_velocity``).
            Needs the conditional target and independent noise.
        objective: "flow" (a velocity v(z, t)) or "meanflow" (an average velocity u(z, r, t),
            sampled in a few steps with ``fmcore.sample_mean_flow``; velocity prediction only). Its
            defaults differ: see ``OBJECTIVE_DEFAULTS``.
        **options: see ``DEFAULTS``: lr, batch_size, hidden, depth, n_freqs, z_freqs, activation,
            ema, ema_power, lr_schedule, lr_horizon, lr_final, max_steps, prediction, reference, check_every,
            label_dropout.
    Raises:
        ValueError: bad data, unknown schedule/target/coupling, unknown option (the message lists
            the valid ones) or a bad value (e.g. lr <= 0 or not finite).

    Attributes:
        history: per-step losses (floats); ``history[-1]`` is the loss of step ``step_count``
            (``losses_since(step)`` slices it, also when a shipped state kept only its tail).
        step_count, elapsed (training seconds), status ("ok" | "diverged" | "done"), message,
        device, options (the validated options), model (the trained net; ``flow`` samples with
        the EMA copy, ``sampling_net``), optimizer (its ``torch.optim.Adam``).
        rng_key, rng_counter: the random stream, a counter-based generator (``fmcore.counter_rng``):
        every draw is Philox at (key = seed mod 2^64, counter), and each ``draw`` moves the counter
        on by one. Snapshots and ``state_dict`` keep both, so a resumed or restored trainer
        draws what the original would.

    Stepping from outside (``fmcore.BatchTrainer`` steps many trainers' networks at once): ``step(n)``
    is ``budget(n)``, then per step ``draw`` -> ``regression`` -> an Adam step on the loss -> the
    EMA moved by ``ema_decay`` -> ``step_count += 1``, a ``check`` of the losses every
    ``check_every`` steps and at the last one, and ``finish``. A bank draws the batches of all its
    slots in one computation instead (``batches`` at each slot's key and counter, then ``pair``
    for fixed noise or a coupling), and moves each slot's ``rng_counter`` on as ``draw`` would.
    """

    def __init__(
        self,
        data,
        *,
        schedule: str = "linear",
        target: str | None = None,
        coupling: str = "independent",
        seed: int = 0,
        device=None,
        noise=None,
        labels=None,
        objective: str = "flow",
        **options,
    ):
        self.data = _as_points(data, "data")
        self.noise = None if noise is None else _as_points(noise, "noise")
        self.labels = None if labels is None else _as_labels(labels, self.data.shape[0])
        self.n_classes = 0 if self.labels is None else int(self.labels.max()) + 1
        self.schedule: Schedule = get_schedule(_schedule_name(schedule))
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
        defaults = dict(OBJECTIVE_DEFAULTS[objective])
        default_target = defaults.pop("target")
        if self.labels is not None and objective != "flow":
            raise ValueError("labels train a flow model; the meanflow objective is unconditional")
        target = default_target if target is None else target
        if self.labels is not None and (
            target != "conditional" or coupling != "independent" or noise is not None
        ):
            raise ValueError(
                "labels train the conditional target with independent noise: each class's field must "
                "start from N(0, I); drop target, coupling and noise"
            )
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        if coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {coupling!r}; choose one of {', '.join(COUPLINGS)}")
        if not _is_int(seed):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        if target == "marginal" and (coupling != "independent" or noise is not None):
            raise ValueError(
                "the marginal target is the field of independent noise: use coupling='independent'"
            )
        if self.noise is not None and (self.noise.shape != self.data.shape or coupling != "independent"):
            raise ValueError(
                f"noise must pair with data row by row (shape {tuple(self.data.shape)}) and leaves "
                f"no coupling to choose; got shape {tuple(self.noise.shape)}, coupling {coupling!r}"
            )
        self.options = data_defaults(validate_options({**defaults, **options}), self.data.shape[0])
        if objective == "meanflow" and self.options["prediction"] != "velocity":
            raise ValueError("the meanflow objective learns average velocities: use prediction='velocity'")
        if self.options["prediction"] == "noise" and not float(self.schedule.alpha(torch.tensor(0.0))) > 0:
            raise ValueError(
                f"noise prediction divides by alpha_t, which is 0 at t=0 on the {self.schedule.name} "
                "schedule: use schedule='vp'"
            )
        self.target, self.coupling, self.seed, self.objective = target, coupling, int(seed), objective
        self.device = pick_device(device)
        self.data = self.data.to(self.device)
        self.noise = None if self.noise is None else self.noise.to(self.device)
        self.labels = None if self.labels is None else self.labels.to(self.device)
        self._loss_floor: float | None = None
        self._init_training()

    # ---- set-up -------------------------------------------------------------------------------

    @property
    def model_config(self) -> ModelConfig:
        o = self.options
        return ModelConfig(
            dim=self.data.shape[1],
            hidden=o["hidden"],
            depth=o["depth"],
            n_freqs=o["n_freqs"],
            z_freqs=o["z_freqs"],
            activation=o["activation"],
            n_classes=self.n_classes,
        )

    @property
    def config(self) -> dict:
        """The settings that define this run (plain JSON-able values)."""
        return {
            "schedule": self.schedule.name,
            "target": self.target,
            "coupling": self.coupling,
            "seed": self.seed,
            "paired_noise": self.noise is not None,
            "objective": self.objective,
            "options": dict(self.options),
        }

    def _init_training(self):
        """Fresh weights from the seed, a new optimizer, step 0."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model = NETS[self.objective](self.model_config).to(self.device)
        self._ema = copy.deepcopy(self.model).requires_grad_(False) if self.options["ema"] > 0 else None
        self.step_count = 0
        self.elapsed = 0.0
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, fused=fused)
        self.rng_key, self.rng_counter = self.seed % 2**64, 0
        self._ahead: tuple | None = None  # (first counter, then _batches_at's) of the draws ahead
        self.history: list[float] = []
        self.status, self.message = "ok", ""
        self._snapshot = self._take_snapshot()

    @property
    def sampling_net(self) -> VelocityMLP:
        """The network ``flow`` samples with: the EMA copy (``ema_net``) when ``ema`` > 0, else ``model``."""
        return self._ema if self._ema is not None else self.model

    @property
    def ema_net(self) -> VelocityMLP | None:
        """The exponential moving average of ``model``'s weights (None when ``ema`` is 0)."""
        return self._ema

    @property
    def ema_decay(self) -> float:
        """The decay of the EMA update after the next step, step t = ``step_count + 1``:
        ``min(ema, (1 - 1/t)^(gamma + 1))`` with gamma = ``ema_power``.

        Below the cap ``ema`` this is the power-function EMA of Karras et al. 2024 ("Analyzing and
        Improving the Training Dynamics of Diffusion Models", EDM2, sec. 3.1 and eq. 3): after t
        steps the average weighs the weights after step tau by (tau^(gamma+1) - (tau-1)^(gamma+1))
        / t^(gamma+1) (the products of the decays telescope), i.e. about (gamma+1) tau^gamma / t^(gamma+1):
        no weight on the random init, and a window that grows with training, with no horizon to
        set. Its lag (the steps between the weights now and the average's centre of mass) is about
        t / (gamma + 2); the cap stops the growth at about 1 / (1 - ema) steps, so that a live
        picture keeps up (with a changed learning rate, say)."""
        t = self.step_count + 1
        return min(self.options["ema"], (1 - 1 / t) ** (self.options["ema_power"] + 1))

    @property
    def lr(self) -> float:
        """The learning rate at the current step (base lr times the lr schedule)."""
        o = self.options
        if o["lr_schedule"] == "cosine":
            progress = min(self.step_count / o["lr_horizon"], 1.0)
            factor = o["lr_final"] + (1.0 - o["lr_final"]) * 0.5 * (1.0 + math.cos(math.pi * progress))
            return o["lr"] * factor
        return o["lr"]

    def set_lr(self, lr: float):
        """Change the base learning rate; after a divergence this also resumes training from the
        restored weights."""
        _check_option("lr", lr)
        self.options["lr"] = float(lr)
        if self.status == "diverged":
            self.status, self.message = "ok", ""

    def warm_start(self, other: Trainer):
        """Continue from ``other``'s weights (same architecture), with this trainer's fresh optimizer."""
        if (other.model_config, other.objective) != (self.model_config, self.objective):
            raise ValueError(
                f"cannot warm start: {other.objective} {other.model_config} differs from "
                f"{self.objective} {self.model_config}"
            )
        self.model.load_state_dict(other.model.state_dict())
        if self._ema is not None:
            self._ema.load_state_dict(other.sampling_net.state_dict())
        self._snapshot = self._take_snapshot()

    def reset(self, **options):
        """Start over: fresh weights from the seed, step 0, history cleared; ``options`` change
        settings first (validated like the constructor's)."""
        self.options = data_defaults(validate_options({**self.options, **options}), self.data.shape[0])
        self._init_training()

    # ---- one step -----------------------------------------------------------------------------

    def _batches_at(self, key: int, counters: range, n: int) -> tuple[torch.Tensor, Batch, tuple | None]:
        """This trainer's batches of ``n`` rows at stream ``key``'s ``counters``, one per counter:
        rows (C, n), the C batches before pairing (``batches``: z_0 the drawn normals), and for the
        meanflow objective its (r, t) times, each (C, n); else None."""
        uniforms, normals = draw_layout(self.labels is not None, self.objective)
        c, (m, d) = len(counters), self.data.shape
        draws = counter_rng.draw(
            torch.tensor([counter_rng.key_words(key)], dtype=torch.int64, device=self.device).expand(c, 2),
            torch.arange(counters.start, counters.stop, dtype=torch.int64, device=self.device),
            n,
            torch.full((c,), m, dtype=torch.int64, device=self.device),
            uniforms,
            d + normals,
        )
        t_max, o = self.schedule.t_max, self.options
        unpaired = batches(
            draws.rows,
            draws.uniforms,
            draws.normals[..., :d],
            self.data,
            t_max,
            self.labels,
            o["label_dropout"],
            self.n_classes,
        )
        if self.objective != "meanflow":
            return draws.rows, unpaired, None
        return (
            draws.rows,
            unpaired,
            sample_times(draws.normals[..., d:].movedim(-1, 0), draws.uniforms[..., -1], t_max),
        )

    def _paired(self, rows: torch.Tensor, unpaired: Batch, i: int) -> Batch:
        """Batch ``i`` of ``_batches_at``'s, its coupling applied."""
        z1 = unpaired.z_1[i]
        y = None if unpaired.labels is None else unpaired.labels[i]
        return Batch(unpaired.t[i], z1, self.pair(rows[i], unpaired.z_0[i], z1), y)

    def _next(self) -> tuple[Batch, tuple | None]:
        """The batch at the stream's counter, which moves on by one, and the meanflow objective's
        (r, t) for it (else None); drawn ``draws_ahead`` counters at a time (the same numbers as one
        by one, with the per-op costs shared among them)."""
        c, n = self.rng_counter, self.options["batch_size"]
        if self._ahead is None or not 0 <= c - self._ahead[0] < len(self._ahead[1]):
            self._ahead = (
                c,
                *self._batches_at(self.rng_key, range(c, c + draws_ahead(1, n, self.device)), n),
            )
        base, rows, unpaired, times = self._ahead
        self.rng_counter += 1
        i = c - base
        return self._paired(rows, unpaired, i), None if times is None else (times[0][i], times[1][i])

    def pair(self, rows: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """The noise paired with data rows ``rows`` (n,) of this trainer's data: its fixed ``noise``
        rows, else the coupling of the drawn normals z0 (n, d) with z1 (n, d)."""
        return self.noise[rows] if self.noise is not None else COUPLINGS[self.coupling](z0, z1)

    def draw(self) -> Batch:
        """One step's ``Batch`` of ``batch_size`` rows from this trainer's random stream (Philox4x32-10
        at key ``rng_key`` and counter ``rng_counter``, see ``fmcore.counter_rng``; snapshots and
        ``state_dict`` keep both); a ``label_dropout`` share of the labels replaced by the null label."""
        return self._next()[0]

    def _exact_endpoints(self, z_t, t, s, reference):
        """Posterior means (E[z_1 | z_t], E[z_0 | z_t]) over the reference data set."""
        z1_hat = exact_posterior_mean(z_t, t.clamp(max=T_EXACT_MAX), reference, self.schedule)
        return z1_hat, (z_t - s.alpha[:, None] * z1_hat) / s.sigma[:, None]

    def _ideal_endpoints(self, z_t, t, s, y):
        """The exact posterior means given z_t and, for rows whose label y names a class, that class."""
        z1, z0 = self._exact_endpoints(z_t, t, s, self.data)
        for c in range(self.n_classes):
            rows = y == c
            if bool(rows.any()):
                reference = self.data[self.labels == c]
                z1[rows], z0[rows] = self._exact_endpoints(
                    z_t[rows], t[rows], self.schedule(t[rows]), reference
                )
        return z1, z0

    def regression(
        self, t: torch.Tensor, z1: torch.Tensor, z0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The regression pair of a batch: t (n,), z1, z0 (n, d) -> (z_t, target), each (n, d), the
        target in the network's parametrisation (``prediction``). The conditional target is
        pointwise, so rows of several batches may be passed at once; the marginal one reads the
        trainer's data (or, with ``reference="batch"``, these rows)."""
        s = self.schedule(t)
        z_t = s.alpha[:, None] * z1 + s.sigma[:, None] * z0
        if self.target == "marginal":
            reference = self.data if self.options["reference"] == "data" else z1
            z1, z0 = self._exact_endpoints(z_t, t, s, reference)
        return z_t, from_endpoints(z1, z0, self.options["prediction"], s)

    def _train_step(self) -> torch.Tensor:
        batch, times = self._next()
        t, z1, z0, y = batch.t, batch.z_1, batch.z_0, batch.labels
        if times is not None:
            r, t = times
            with torch.no_grad():
                z_r, v = self.regression(r, z1, z0)
            loss, reported = meanflow_loss(self.model, z_r, r, t, v)
        else:
            with torch.no_grad():
                z_t, target = self.regression(t, z1, z0)
            loss = reported = (self.model(z_t, t, y) - target).square().sum(1).mean()
        self.optimizer.param_groups[0]["lr"] = self.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self._ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(
                    list(self._ema.parameters()), list(self.model.parameters()), 1 - self.ema_decay
                )
        self.step_count += 1
        return reported.detach()

    # ---- the resumable loop -------------------------------------------------------------------

    def step(self, n: int = 50) -> TrainStats:
        """Train ``n`` more steps (fewer if ``max_steps`` is reached) and report.

        Does nothing while the status is "diverged" (see ``set_lr``, ``reset``) or "done".
        """
        n = self.budget(n)
        if n == 0:
            return self.finish([], 0.0)
        self.model.train()
        start, losses = time.perf_counter(), []
        while len(losses) < n:
            k = min(self.options["check_every"], n - len(losses))
            chunk = torch.stack([self._train_step() for _ in range(k)]).tolist()
            if not self.check(chunk):
                break
            losses.extend(chunk)
        return self.finish(losses, time.perf_counter() - start)

    def budget(self, n: int) -> int:
        """How many of ``n`` requested steps this call may take (0 unless the status is "ok")."""
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be an integer >= 0; got {n!r}")
        if self.status == "ok" and self.options["max_steps"] is not None:
            n = min(n, max(0, self.options["max_steps"] - self.step_count))
            self._mark_done()
        return n if self.status == "ok" else 0

    def _mark_done(self):
        max_steps = self.options["max_steps"]
        if self.status == "ok" and max_steps is not None and self.step_count >= max_steps:
            self.status, self.message = "done", f"reached max_steps={max_steps}"

    def finish(self, losses: list[float], seconds: float) -> TrainStats:
        """End a call that kept ``losses`` (the checked ones) after ``seconds`` of training (0 when it
        took no step): count the time, mark "done" at ``max_steps``, and report."""
        self.elapsed += seconds
        self._mark_done()
        mean = float(np.mean(losses)) if losses else math.nan
        return self._stats(mean, len(losses) / max(seconds, 1e-9) if losses else 0.0)

    def check(self, chunk: list[float], weight_max: float | None = None) -> bool:
        """Check the per-step losses taken since the last check (and the weights after them; their
        largest absolute value may be passed as ``weight_max``): keep them in ``history`` and
        snapshot (True), or restore the last snapshot and report the divergence (False)."""
        problem = self._diagnose(chunk, weight_max)
        if problem:
            self._diverged(chunk, problem)
            return False
        self.history.extend(chunk)
        self._snapshot = self._take_snapshot()
        return True

    def losses_since(self, step: int) -> list[float]:
        """The per-step losses of the steps after ``step`` (also right when a state was shipped with
        only the tail of its history: ``history[-1]`` is always the loss of step ``step_count``)."""
        kept = max(0, min(self.step_count - step, len(self.history)))
        return self.history[len(self.history) - kept :]

    def _stats(self, loss: float, steps_per_s: float) -> TrainStats:
        return TrainStats(
            step=self.step_count,
            loss=loss,
            elapsed=self.elapsed,
            steps_per_s=steps_per_s,
            lr=self.lr,
            status=self.status,
            message=self.message,
        )

    def _diagnose(self, chunk: list[float], weight_max: float | None = None) -> str:
        """Why this chunk of losses (and the weights after it) count as diverged; "" if healthy."""
        if not all(math.isfinite(x) for x in chunk):
            return "loss is not finite"
        worst = max(chunk)
        if worst > LOSS_LIMIT:
            return f"loss above {LOSS_LIMIT:.0e}"
        if len(self.history) >= self.options["check_every"]:
            median = float(np.median(self.history[-MEDIAN_WINDOW:]))
            if worst > EXPLOSION_FACTOR * median:
                return f"loss {EXPLOSION_FACTOR:.0e} times its recent median ({median:.3g})"
        if weight_max is None:
            weight_max = float(torch.stack([p.detach().abs().max() for p in self.model.parameters()]).max())
        if not weight_max <= WEIGHT_LIMIT:
            return f"a weight grew beyond {WEIGHT_LIMIT:.0e}"
        return ""

    def _diverged(self, chunk: list[float], problem: str):
        bad = next((i for i, x in enumerate(chunk) if not math.isfinite(x) or x > LOSS_LIMIT), len(chunk) - 1)
        at, loss = self.step_count - len(chunk) + bad + 1, chunk[bad]
        self._restore(self._snapshot)
        self.status = "diverged"
        self.message = (
            f"training diverged at step {at} (loss {loss:.3g}; {problem}); restored the weights "
            f"from step {self.step_count}; lower the learning rate (now {self.options['lr']:g})"
        )

    # ---- snapshots and state ------------------------------------------------------------------

    def _take_snapshot(self) -> dict:
        return {
            "step": self.step_count,
            "model": _to_cpu(self.model.state_dict()),
            "ema": None if self._ema is None else _to_cpu(self._ema.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "rng": {"key": self.rng_key, "counter": self.rng_counter},
        }

    def _restore(self, snap: dict):
        self.model.load_state_dict(snap["model"])
        if self._ema is not None:
            self._ema.load_state_dict(snap["ema"])
        self.optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
        self.rng_key, self.rng_counter = snap["rng"]["key"], snap["rng"]["counter"]
        # The history already ends at the snapshot: snapshots follow every chunk that joins it.
        self.step_count = snap["step"]

    def state_dict(self) -> dict:
        """Everything needed to resume exactly, as plain picklable values (tensors on the CPU).

        The last healthy snapshot is not in it: outside ``step`` (and between a ``BatchTrainer``'s
        calls) a trainer always sits at its last check, so the snapshot is this state itself."""
        return {
            "format": STATE_FORMAT,
            "config": self.config,
            "data": self.data.cpu(),
            "noise": None if self.noise is None else self.noise.cpu(),
            "labels": None if self.labels is None else self.labels.cpu(),
            "model": _to_cpu(self.model.state_dict()),
            "ema": None if self._ema is None else _to_cpu(self._ema.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "rng": {"key": self.rng_key, "counter": self.rng_counter},
            "step": self.step_count,
            "elapsed": self.elapsed,
            "history": torch.tensor(self.history, dtype=torch.float64),
            "status": self.status,
            "message": self.message,
            "loss_floor": self._loss_floor,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device=None) -> Trainer:
        """Rebuild a trainer from ``state_dict()``; its next steps are those the original would take."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a Trainer state (expected format {STATE_FORMAT!r})")
        c = state["config"]
        trainer = cls(
            state["data"],
            schedule=c["schedule"],
            target=c["target"],
            coupling=c["coupling"],
            seed=c["seed"],
            device=device,
            noise=state["noise"],
            labels=state.get("labels"),
            objective=c.get("objective", "flow"),
            **c["options"],
        )
        trainer._restore({k: state[k] for k in ("model", "ema", "optimizer", "rng", "step")})
        trainer.history = [float(x) for x in state["history"].tolist()]
        trainer.elapsed, trainer.status, trainer.message = state["elapsed"], state["status"], state["message"]
        trainer._snapshot = trainer._take_snapshot()
        trainer._loss_floor = state["loss_floor"]
        return trainer

    # ---- what the app reads -------------------------------------------------------------------

    @property
    def flow(self) -> FlowModel:
        """The learned field as a ``FlowModel`` (EMA weights when ``ema`` > 0); shares the weights."""
        return FlowModel(
            self.sampling_net,
            self.schedule,
            self.options["prediction"],
            metadata={"trainer": self.config, "step": self.step_count},
        )

    def velocity(self, z, t) -> torch.Tensor:
        """The learned velocity at (z, t): z (n, d), t float/0-d/(n,); (n, d) float32 on the CPU,
        no grad. Pass it to ``fmcore.integrate``."""
        return self.flow.velocity(z, t)

    def guided_velocity(self, label: int | None, guidance: float = 1.0):
        """The classifier-free guided field ``v(z,t|null) + w (v(z,t|c) - v(z,t|null))`` of a model
        trained with labels: w = 1 the conditional field, w = 0 (or ``label=None``) the
        unconditional one. See ``FlowModel.guided_velocity``."""
        return self.flow.guided_velocity(label, guidance)

    def save(self, path, metadata: dict | None = None) -> None:
        """Write the sampling weights and config to one safetensors file (see ``fmcore.io.save``)."""
        save_model(self.flow, path, metadata)

    @property
    def loss_floor(self) -> float:
        """Irreducible part of the training loss: ``E |target - ideal|^2`` with the ideal network
        being the exact marginal field of the data (Monte Carlo over FLOOR_SAMPLES draws, cached).

        For the conditional target this is ``E |u_t(z|z_1) - u_t(z)|^2``; for the marginal target
        over the whole data set it is 0 exactly; with ``reference="batch"`` it is small but not 0.
        With labels the ideal network is the exact field of each row's own class (of all the data
        for the null label). NaN where the exact field is not the minimiser (OT coupling, fixed
        noise pairs) and for the meanflow objective (its floor would need the exact average velocity).
        """
        if self._loss_floor is None:
            self._loss_floor = self._estimate_floor()
        return self._loss_floor

    @torch.no_grad()
    def _estimate_floor(self) -> float:
        if self.coupling != "independent" or self.noise is not None or self.objective == "meanflow":
            return math.nan
        if self.target == "marginal" and self.options["reference"] == "data":
            return 0.0
        batch = self.options["batch_size"]
        chunks = -(-FLOOR_SAMPLES // batch)
        rows, unpaired, _ = self._batches_at(FLOOR_SEED, range(chunks), batch)
        total, count = 0.0, 0
        for i in range(chunks):
            draw = self._paired(rows, unpaired, i)
            t, y = draw.t, draw.labels
            z_t, target = self.regression(t, draw.z_1, draw.z_0)
            s = self.schedule(t)
            ideal = from_endpoints(*self._ideal_endpoints(z_t, t, s, y), self.options["prediction"], s)
            total += float((target - ideal).square().sum(1).sum())
            count += batch
        return total / count
