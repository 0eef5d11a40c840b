"""The write-it-yourself exercise: a complete train-and-sample script with its target left blank,
and a checker for the learner's target expression.

The learner types an expression such as ``z1 - z0``. It is never handed to ``eval``: ``parse_target``
reads it with ``ast`` and accepts only the names in ``NAMES``, numbers, ``+ - * / **`` and unary
minus, and ``check_target`` evaluates that tree on torch tensors of one batch and compares it with
the right target ``d_alpha z1 + d_sigma z0``. So every algebraic form of the right answer passes
(``z1 - z0``, ``-(z0 - z1)``, ``d_alpha*z1 + d_sigma*z0``, ...), and anything else is a plain
message. Messages never contain the learner's text (the page shows that text only as code).
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

import torch

import fmcore

__all__ = ["MAX_LENGTH", "NAMES", "SCRIPT", "TargetCheck", "TargetError", "check_target", "parse_target"]

NAMES = ("z0", "z1", "t", "alpha", "sigma", "d_alpha", "d_sigma")
"""What a target may use: the pair, the times and the schedule's values at them."""
MAX_LENGTH = 200
"""Longer input is refused before parsing (a target needs a few dozen characters)."""
_MAX_NODES = 100

SCRIPT = '''\
"""Flow matching on two moons in ~30 lines: train a velocity network, then sample it."""
import torch
import fmcore

torch.manual_seed(0)
data = fmcore.datasets.sample("moons", 2000, seed=0)           # (m, 2) training points
net = fmcore.VelocityMLP()                                     # v_theta(z, t): (n, 2), (n,) -> (n, 2)
optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
schedule = fmcore.get_schedule("linear")                       # alpha_t = t, sigma_t = 1 - t

for step in range(2000):
    z1 = data[torch.randint(len(data), (256,))]                # data, t = 1
    z0 = torch.randn(256, 2)                                   # noise, t = 0
    t = torch.rand(256, 1)                                     # one time per point, a column
    s = schedule(t)                                            # .alpha .sigma .d_alpha .d_sigma
    alpha, sigma, d_alpha, d_sigma = s.alpha, s.sigma, s.d_alpha, s.d_sigma
    z_t = alpha * z1 + sigma * z0                              # a point of the path
    u_t = ...                                                  # YOUR TARGET HERE
    loss = (net(z_t, t[:, 0]) - u_t).square().sum(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 500 == 0:
        print(f"step {step}: loss {loss.item():.3f}")

with torch.no_grad():                                          # sample: Euler, t from 0 to 1
    z = torch.randn(1000, 2)
    steps = 50
    for k in range(steps):
        z = z + net(z, k / steps) / steps
print("energy distance to the data:", fmcore.metrics.energy_distance(z, data))  # ~0.01 is good
'''
"""A complete, runnable script; replace ``...`` with the target and it trains and samples."""

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_BINARY[ast.Pow] = torch.pow


class TargetError(ValueError):
    """The expression is not one the checker accepts; the message says what is allowed."""


def parse_target(text: str) -> ast.Expression:
    """Parse a target expression, allowing only ``NAMES``, numbers, + - * / ** and unary minus.

    Raises:
        TargetError: with a message that does not repeat ``text``.
    """
    if not isinstance(text, str) or not text.strip():
        raise TargetError("Type an expression for u_t, for example in terms of z0 and z1.")
    if len(text) > MAX_LENGTH:
        raise TargetError(f"That is longer than {MAX_LENGTH} characters; a target needs far fewer.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise TargetError(
            "That is not a formula Python can read: check the brackets and operators."
        ) from None
    nodes = list(ast.walk(tree))
    if len(nodes) > _MAX_NODES:
        raise TargetError("That expression is too long; a target needs only a few terms.")
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Name, ast.Constant, ast.Load)
    allowed += tuple(_BINARY)
    for node in nodes:
        if not isinstance(node, allowed):
            raise TargetError(
                "Only the names " + ", ".join(NAMES) + ", numbers, + − * / ** and brackets are allowed."
            )
        if isinstance(node, ast.Name) and node.id not in NAMES:
            raise TargetError("A name there is not one of " + ", ".join(NAMES) + ".")
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, int | float)
        ):
            raise TargetError("Only plain numbers may appear as constants.")
    return tree


def _evaluate(node: ast.AST, env: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Constant):
        # As a float64 tensor, so that 10**10**10 overflows to inf instead of building a huge int.
        return torch.tensor(float(node.value), dtype=torch.float64)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, env)
        return -value if isinstance(node.op, ast.USub) else value
    return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))


@dataclass(frozen=True)
class TargetCheck:
    """The verdict on one target expression.

    Attributes:
        correct: equal to the right target on the linear path, on every point of the batch.
        general: equal to it on every schedule in ``fmcore.SCHEDULES`` too.  message: plain text.
    """

    correct: bool
    general: bool
    message: str


def _batch(schedule: str, n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The names a target may use on one batch (float64), and the right target there."""
    g = torch.Generator().manual_seed(seed)
    z1 = fmcore.datasets.sample("moons", n, seed=seed).double()
    z0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = (0.02 + 0.96 * torch.rand(n, 1, generator=g, dtype=torch.float64)).clamp(
        max=fmcore.get_schedule(schedule).t_max
    )
    s = fmcore.get_schedule(schedule)(t)
    env = dict(z0=z0, z1=z1, t=t, alpha=s.alpha, sigma=s.sigma, d_alpha=s.d_alpha, d_sigma=s.d_sigma)
    return env, s.d_alpha * z1 + s.d_sigma * z0


def _matches(tree: ast.Expression, schedule: str, n: int, seed: int) -> tuple[bool, str]:
    env, right = _batch(schedule, n, seed)
    with torch.no_grad():
        try:
            value = _evaluate(tree, env)
        except (ArithmeticError, RuntimeError):
            return False, "It could not be computed on the batch (a division by zero or similar)."
    if value.dim() < 2 or value.shape[-1] != 2:
        return False, "It gives one number per point; the target is a 2-D vector, like z1 and z0."
    value = value.expand_as(right)
    if not torch.isfinite(value).all():
        return False, "It is not finite on some points of the batch (did you divide by something that is 0?)."
    ok = torch.allclose(value, right, rtol=1e-6, atol=1e-6)
    return ok, ""


def check_target(text: str, n: int = 256, seed: int = 0) -> TargetCheck:
    """Compare the learner's target with ``d_alpha z1 + d_sigma z0`` on a batch of the linear path.

    Never raises for bad input: every problem is a ``TargetCheck`` with ``correct=False`` and a
    message that points at the idea, without repeating ``text``.
    """
    try:
        tree = parse_target(text)
    except TargetError as error:
        return TargetCheck(False, False, str(error))
    ok, problem = _matches(tree, "linear", n, seed)
    if problem:
        return TargetCheck(False, False, problem)
    if not ok:
        return TargetCheck(
            False,
            False,
            "Not the target on this batch. The target is the velocity of the path: differentiate "
            "z_t = alpha_t z1 + sigma_t z0 in t (z1 and z0 are fixed).",
        )
    general = all(_matches(tree, name, n, seed)[0] for name in fmcore.SCHEDULES)
    if general:
        return TargetCheck(
            True, True, "Right on every schedule: d_alpha z1 + d_sigma z0 is the path's velocity."
        )
    return TargetCheck(
        True,
        False,
        "Right for this script's linear path. On the cosine or VP schedule it would be wrong: write it "
        "with d_alpha and d_sigma and it holds for every schedule.",
    )
