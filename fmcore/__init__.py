"""fmcore: a small, exact flow matching library (torch + numpy).

Time runs from t=0 (noise, z_0 ~ N(0, I)) to t=1 (data z_1); the path is
``z_t = alpha_t z_1 + sigma_t z_0`` and sampling integrates dz/dt = v(z, t) forward in time.
"""

from . import datasets, metrics
from .batch import BatchTrainer
from .coupling import COUPLINGS
from .exact import exact_log_density, exact_posterior_mean, exact_score, exact_velocity
from .io import load
from .likelihood import divergence, log_likelihood
from .meanflow import MeanFlowConfig, meanflow_loss, meanflow_target, sample_mean_flow
from .models import AverageVelocityMLP, VelocityMLP
from .paths import PARAMETRISATIONS, PathSample, change_schedule, convert, sample_path
from .schedules import SCHEDULES, Blurred, Schedule, ScheduleValue, get_schedule
from .sde import bridge, diffusion_coefficient, sample_sde
from .solvers import SOLVERS, TIME_GRIDS, SolverError, Trajectory, integrate, nfe_for
from .trainer import Trainer, TrainStats

__all__ = [
    "COUPLINGS",
    "PARAMETRISATIONS",
    "SCHEDULES",
    "SOLVERS",
    "TIME_GRIDS",
    "AverageVelocityMLP",
    "BatchTrainer",
    "Blurred",
    "MeanFlowConfig",
    "PathSample",
    "Schedule",
    "ScheduleValue",
    "SolverError",
    "TrainStats",
    "Trainer",
    "Trajectory",
    "VelocityMLP",
    "bridge",
    "change_schedule",
    "convert",
    "datasets",
    "diffusion_coefficient",
    "divergence",
    "exact_log_density",
    "exact_posterior_mean",
    "exact_score",
    "exact_velocity",
    "get_schedule",
    "integrate",
    "load",
    "log_likelihood",
    "meanflow_loss",
    "meanflow_target",
    "metrics",
    "nfe_for",
    "sample_mean_flow",
    "sample_path",
    "sample_sde",
]
