"""Lesson 4's claims about dopri5: it reads the output times off its dense output, so its NFE
follows its tolerance, not the number of output times."""

from __future__ import annotations

import numpy as np

from explorer.lessons import l4_solvers
from fmcore.solvers import time_grid


def test_dopri5s_nfe_does_not_depend_on_the_number_of_output_times():
    runs = {
        steps: l4_solvers.solver_runs("moons", "blurred", steps, "uniform", ("dopri5",))[1][0]
        for steps in (1, 8, 64)
    }
    assert len({run.nfe for run in runs.values()}) == 1, "the same accepted steps, whatever the outputs"
    assert len({run.error for run in runs.values()}) == 1
    for steps, run in runs.items():
        np.testing.assert_allclose(
            run.ts, time_grid("uniform", steps, 0.0, 1.0, "linear").double(), atol=1e-7
        )
        assert run.zs.shape[0] == steps + 1


def test_dopri5s_nfe_follows_its_tolerance():
    (curve,) = l4_solvers.error_curves("moons", "blurred", "uniform", ("dopri5",))
    # One point per tolerance, sorted by NFE: a tighter tolerance costs more NFE and buys a smaller error.
    assert len(curve.nfe) == len(l4_solvers.DOPRI_TOLERANCES)
    assert (np.diff(curve.nfe) > 0).all() and (np.diff(curve.error) < 0).all()
    assert curve.nfe[-1] > 3 * curve.nfe[0]
