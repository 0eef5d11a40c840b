"""fmcore: a small, exact flow matching library (torch + numpy).

Time runs from t=0 (noise, z_0 ~ N(0, I)) to t=1 (data z_1); the path is
``z_t = alpha_t z_1 + sigma_t z_0`` and sampling integrates dz/dt = v(z, t) forward in time.
"""

from . import datasets, metrics
from .coupling import COUPLINGS
from .exact import exact_log_density, exact_posterior_mean, exact_score, exact_velocity
from .io import load
from .models import VelocityMLP
from .paths import PARAMETRISATIONS, PathSample, change_schedule, convert, sample_path
from .schedules import SCHEDULES, Schedule, ScheduleValue, get_schedule
from .trainer import Trainer, TrainStats

__all__ = [
    "COUPLINGS",
    "PARAMETRISATIONS",
    "SCHEDULES",
    "PathSample",
    "Schedule",
    "ScheduleValue",
    "TrainStats",
    "Trainer",
    "VelocityMLP",
    "change_schedule",
    "convert",
    "datasets",
    "exact_log_density",
    "exact_posterior_mean",
    "exact_score",
    "exact_velocity",
    "get_schedule",
    "load",
    "metrics",
    "sample_path",
]
