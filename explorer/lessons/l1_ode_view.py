"""Lesson 1 (the ODE view): the time direction used right and wrong, on the Playground's exact field."""

from __future__ import annotations

from fmcore.solvers import integrate

from .shared import (
    DATA_POINTS,
    REFERENCE_POINTS,
    Case,
    blurred,
    exact_field,
    lesson_data,
    lesson_noise,
    measured_case,
    reference_sample,
)

__all__ = ["time_direction_cases"]


def time_direction_cases(preset: str, n: int = 300, steps: int = 100, seed: int = 0) -> list[Case]:
    """Right and wrong uses of the time direction, each integrated with Euler and measured.

    The field is the Playground's exact field (``blurred``), the one lesson 1 animates.

    Returns six panels: the data; sampling forward (right); the data integrated backward to noise
    and forward again (a round trip); and the two confusions: noise integrated from t=1 down to 0,
    and forward sampling with the field's time reversed, ``v(z, 1 - t)``.
    """
    data = lesson_data(preset)
    v = exact_field(data, blurred())
    reference = reference_sample(preset)
    gaussian = lesson_noise(REFERENCE_POINTS, seed=seed + 1).numpy()
    z0 = lesson_noise(n, seed)

    def run(velocity, z, t0, t1):
        return integrate(velocity, z, "euler", steps, t0=t0, t1=t1, schedule="linear").z_end

    forward = run(v, z0, 0.0, 1.0)
    encoded = run(v, data[:n], 1.0, 0.0)
    decoded = run(v, encoded, 0.0, 1.0)
    backward_from_noise = run(v, z0, 1.0, 0.0)
    reversed_time = run(lambda z, t: v(z, 1.0 - t), z0, 0.0, 1.0)
    round_trip_error = (decoded - data[:n]).norm(dim=1)
    runaway = float(backward_from_noise.norm(dim=1).max())
    return [
        Case("The data (t = 1)", data[:n].numpy(), f"{n} of the {DATA_POINTS} points the field is built on"),
        measured_case("Sampling: noise, forward t: 0 → 1", forward, reference, "data"),
        measured_case("Wrong: forward with v(z, 1 − t)", reversed_time, reference, "data", wrong=True),
        measured_case("Encoding: data, backward t: 1 → 0", encoded, gaussian, "N(0, I)"),
        Case(
            "Round trip: that noise, forward again",
            decoded.numpy(),
            f"mean distance to the starting data point: {float(round_trip_error.mean()):.4f}",
        ),
        Case(
            "Wrong: noise, backward t: 1 → 0",
            backward_from_noise.numpy(),
            f"farthest particle at |z| = {runaway:.3g}: it flies off",
            wrong=True,
        ),
    ]
