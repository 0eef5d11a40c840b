"""How noise z_0 and data z_1 are paired in a training batch.

A coupling takes a batch of noise and a batch of data and returns the noise reordered: row i of the
result is the z_0 paired with data row i. ``independent`` keeps the random pairing (plain flow
matching); ``ot`` solves the optimal assignment on the batch (minibatch OT, Tong et al. 2023;
Pooladian et al. 2023), which shortens and straightens the conditional paths, so the learned
marginal paths are straighter too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["COUPLINGS", "independent", "ot", "ot_permutation"]

Coupling = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
COUPLINGS: dict[str, Coupling] = {}


def register(name: str):
    def decorate(coupling: Coupling) -> Coupling:
        COUPLINGS[name] = coupling
        return coupling

    return decorate


@register("independent")
def independent(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """z_0 and z_1 drawn independently: the noise is returned as it is."""
    return z0


def ot_permutation(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """The permutation ``perm`` minimising ``sum_i |z0[perm[i]] - z1[i]|^2`` (exact, Hungarian).

    Args:
        z0: (n, d) noise.  z1: (n, d) data.
    Returns:
        (n,) int64 permutation of ``range(n)`` on z0's device.
    """
    from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize adds ~1 s to startup

    cost = torch.cdist(z1.detach().double().cpu(), z0.detach().double().cpu()).square().numpy()
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(z0.device)


@register("ot")
def ot(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Minibatch optimal transport: z_0 reordered to minimise the total squared distance to z_1."""
    return z0[ot_permutation(z0, z1)]
