"""Counter-based random numbers for many independent streams at once: Philox4x32-10.

A stream is a 64-bit key (from its seed) and a counter (how many draws it has made). A draw is a
pure function of (key, counter, element index), so the draws of K streams are computed together in
one fixed sequence of vectorised integer ops, whatever K: a batch of 300 streams costs the same
number of kernels as one, and each stream's numbers are the same whether it is drawn alone or
beside others (``fmcore.BatchTrainer`` relies on both).

The bijection is Philox4x32 with 10 rounds (Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
as easy as 1, 2, 3", SC 2011), the generator of Random123, cuRAND and torch's own CUDA generator; it
passes TestU01's BigCrush from 7 rounds on, and 10 is the published default. ``philox4x32``
reproduces Random123's known-answer vectors (``tests/kat_vectors``; tests/fmcore/test_counter_rng.py).

Words are 32-bit unsigned values held in int64 tensors. The round's 32 x 32 -> 64-bit product is
taken in 16-bit halves of the multiplier, so no product exceeds 2^48: nothing overflows, and the
bits are the same on every device and dtype path.

From the words: uniforms in [0, 1) from their top 24 bits (a float32's mantissa, so exact), normals
by Box-Muller (|z| <= sqrt(48 ln 2) ~ 5.77: the 24 bits truncate the tails beyond a mass of 2^-24),
and indices below m by Lemire's multiply-shift ``(w m) >> 32`` ("Fast random integer generation in
an interval", 2019), exact and always in range (bias below m / 2^32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["ROUNDS", "Draws", "below", "draw", "key_words", "normal", "philox4x32", "uniform", "words"]

MASK = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # the round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # the key schedule's increments (golden ratio, sqrt(3) - 1)
ROUNDS = 10


def key_words(seed: int) -> tuple[int, int]:
    """A stream's key, the two 32-bit words (low, high) of ``seed`` modulo 2^64."""
    s = int(seed) % 2**64
    return s & MASK, s >> 32


def philox4x32(counter, key, rounds: int = ROUNDS) -> torch.Tensor:
    """Philox4x32-``rounds`` of 128-bit counters under 64-bit keys.

    Args:
        counter: four int64 tensors of words (c0, c1, c2, c3), broadcastable together.
        key: two int64 tensors of words (k0, k1), broadcastable with the counter.
    Returns:
        (4, *shape) int64 words, Random123's ``philox4x32_R(ctr, key)`` in its word order.

    A round is ``(c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)`` with
    ``(hi0, lo0) = M0 c0`` and ``(hi1, lo1) = M1 c2`` (the 64-bit products' words), then the key
    moves on by (W0, W1). The words run in two pairs, ``left`` (the multiplied ones) and ``right``,
    one op for both words of a pair; a product is taken in 16-bit halves of the multiplier,
    ``a M = (a M_high + (a M_low >> 16)) 2^16 + (a M_low mod 2^16)``, each below 2^48. The pairs'
    word order alternates each round ((c0, c2) then (c2, c0); the right pair the other way round),
    so that a round moves only ``lo`` across its pair, by writing each of its two words into the
    other's place. Every op writes into one of four buffers made once: a fresh tensor per op (a
    dozen per round) cost about a fifth of the time at a step's size.
    """
    c0, c1, c2, c3, k0, k1 = torch.broadcast_tensors(*counter, *key)
    lead = (2,) + (1,) * c0.dim()
    m = torch.tensor([PHILOX_M, PHILOX_M[::-1]], dtype=torch.int64, device=c0.device).view(2, *lead)
    m_low, m_high = m & 0xFFFF, m >> 16
    bump = torch.tensor(PHILOX_W[::-1], dtype=torch.int64, device=c0.device).view(lead)
    left, right, k = torch.stack((c0, c2)), torch.stack((c3, c1)), torch.stack((k1, k0))
    u, v = torch.empty_like(left), torch.empty_like(left)
    for r in range(rounds):
        if r:
            k = (k + bump) & MASK
        odd = r % 2
        torch.mul(left, m_low[odd], out=u)
        torch.mul(left, m_high[odd], out=v)
        v += torch.bitwise_right_shift(u, 16, out=left)  # a M = v 2^16 + (u mod 2^16)
        u &= 0xFFFF
        torch.bitwise_right_shift(v, 16, out=left)  # hi
        left ^= right
        left ^= k.flip(0) if odd else k
        v &= 0xFFFF
        v <<= 16
        torch.bitwise_or(v[0], u[0], out=right[1])  # lo, its two words swapped
        torch.bitwise_or(v[1], u[1], out=right[0])
    if rounds % 2:
        left, right = left.flip(0), right.flip(0)
    return torch.stack((left[0], right[1], left[1], right[0]))


def words(key: torch.Tensor, counter: torch.Tensor, n: int, count: int) -> torch.Tensor:
    """``count`` random words for each of ``n`` elements of K streams, word-major.

    Args:
        key: (K, 2) int64 key words.  counter: (K,) int64 draw counters, >= 0.
        n: elements per stream.  count: words per element.
    Returns:
        (count, K, n) int64 words in [0, 2^32). With B = ceil(count / 4) blocks, word j of element
        i of stream k is word j // B of Philox(counter = (i, counter_k mod 2^32, counter_k div 2^32,
        j mod B), key_k): each word a contiguous (K, n) plane, no copy.
    """
    device = key.device
    blocks = -(-count // 4)
    block = torch.arange(blocks, dtype=torch.int64, device=device)[:, None, None]
    index = torch.arange(n, dtype=torch.int64, device=device)
    c = counter[:, None]
    out = philox4x32((index, c & MASK, c >> 32, block), (key[:, 0, None], key[:, 1, None]))
    return out.view(4 * blocks, len(key), n)[:count]


def uniform(w: torch.Tensor) -> torch.Tensor:
    """Words -> float32 uniforms in [0, 1 - 2^-24], from their top 24 bits (exact in float32)."""
    return (w >> 8).to(torch.float32) * 2.0**-24


def normal(u: torch.Tensor) -> torch.Tensor:
    """Box-Muller: (2p, ...) uniforms in [0, 1) -> (2p, ...) independent standard normals, the
    first half radius and the second angle of each pair (``1 - u`` keeps the log finite)."""
    p = len(u) // 2
    radius = (-2.0 * torch.log1p(-u[:p])).sqrt()
    angle = (2.0 * math.pi) * u[p:]
    return torch.cat((radius * angle.cos(), radius * angle.sin()))


def below(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Words (K, n) -> int64 indices in [0, m_k) for m (K,) int64 in [1, 2^31]: Lemire's
    ``(w m) >> 32``, each index with probability within 2^-32 of 1 / m_k."""
    return (w * m[:, None]) >> 32


@dataclass(frozen=True)
class Draws:
    """One draw of K streams, ``n`` elements each.

    Attributes:
        rows: (K, n) int64 indices below each stream's size (None when no sizes were given).
        uniforms: (K, n, u) float32 in [0, 1).  normals: (K, n, d) float32 standard normals (both
        views of word-major planes).
    """

    rows: torch.Tensor | None
    uniforms: torch.Tensor
    normals: torch.Tensor


def draw(
    key: torch.Tensor,
    counter: torch.Tensor,
    n: int,
    sizes: torch.Tensor | None = None,
    uniforms: int = 0,
    normals: int = 0,
) -> Draws:
    """``n`` elements of each of K streams at their counters, all from one ``words`` call.

    Args:
        key: (K, 2) int64 key words (``key_words``).  counter: (K,) int64 counters.
        sizes: optional (K,) int64 in [1, 2^31]: element i of stream k gets a row index below sizes[k].
        uniforms, normals: how many of each per element.
    Returns:
        ``Draws``; word 0 of each element is its row (when sizes are given), the next ``uniforms``
        its uniforms, then the normals' Box-Muller pairs (an odd count drops its last normal).
    """
    first = 0 if sizes is None else 1
    pairs = -(-normals // 2)
    w = words(key, counter, n, first + uniforms + 2 * pairs)
    u = uniform(w[first:])
    return Draws(
        rows=None if sizes is None else below(w[0], sizes),
        uniforms=u[:uniforms].movedim(0, -1),
        normals=normal(u[uniforms:])[:normals].movedim(0, -1),
    )
