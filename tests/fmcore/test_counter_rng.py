"""fmcore.counter_rng: Philox4x32-10 against Random123's known answers and an exact reference, and
its uniforms, normals and row indices tested like a numerical library's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fmcore import counter_rng
from fmcore.counter_rng import MASK, PHILOX_M, PHILOX_W

# Random123 tests/kat_vectors, the "philox4x32 7" and "philox4x32 10" lines: rounds, ctr[4], key[2]
# -> result[4] (hex).
KAT = [
    (7, "00000000 00000000 00000000 00000000", "00000000 00000000", "5f6fb709 0d893f64 4f121f81 4f730a48"),
    (7, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "5207ddc2 45165e59 4d8ee751 8c52f662"),
    (7, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "4dfccaba 190a87f0 c47362ba b6b5242a"),
    (10, "00000000 00000000 00000000 00000000", "00000000 00000000", "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    (10, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    (10, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "d16cfe09 94fdcceb 5001e420 24126ea1"),
]


def _hex(words: str) -> list[int]:
    return [int(w, 16) for w in words.split()]


def _reference(ctr: list[int], key: list[int], rounds: int) -> list[int]:
    """Philox4x32 in Python integers (exact), written from the paper's round function."""
    c, k = [int(x) for x in ctr], [int(x) for x in key]
    for r in range(rounds):
        if r:
            k = [(k[0] + PHILOX_W[0]) & MASK, (k[1] + PHILOX_W[1]) & MASK]
        p0, p1 = PHILOX_M[0] * c[0], PHILOX_M[1] * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & MASK, (p0 >> 32) ^ c[3] ^ k[1], p0 & MASK]
    return c


@pytest.mark.parametrize(("rounds", "ctr", "key", "expected"), KAT)
def test_philox_reproduces_random123_known_answers(rounds, ctr, key, expected):
    words = [torch.tensor(w) for w in _hex(ctr) + _hex(key)]
    out = counter_rng.philox4x32(words[:4], words[4:], rounds=rounds)
    assert out.tolist() == _hex(expected) == _reference(_hex(ctr), _hex(key), rounds)


def test_philox_batched_equals_the_exact_reference_word_for_word():
    rng = np.random.default_rng(0)
    ctr, key = rng.integers(0, 2**32, (4, 64)), rng.integers(0, 2**32, (2, 64))
    out = counter_rng.philox4x32(list(torch.from_numpy(ctr)), list(torch.from_numpy(key)))
    expected = [_reference(list(ctr[:, i]), list(key[:, i]), 10) for i in range(64)]
    assert out.T.tolist() == expected
    assert int(out.min()) >= 0 and int(out.max()) <= MASK


def _streams(k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    key = torch.tensor([counter_rng.key_words(seed * 1000 + i) for i in range(k)])
    return key, torch.zeros(k, dtype=torch.int64)


def test_key_words_split_the_seed_modulo_2_64():
    assert counter_rng.key_words(0) == (0, 0)
    assert counter_rng.key_words(2**32 + 5) == (5, 1)
    assert counter_rng.key_words(-1) == (MASK, MASK)


def test_uniforms_pass_a_chi_square_test_and_a_kolmogorov_smirnov_test():
    key, counter = _streams(4)
    u = counter_rng.draw(key, counter, 25_000, uniforms=1).uniforms.reshape(-1).double().numpy()  # 1e5
    counts = np.bincount((u * 100).astype(int), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert u.min() >= 0.0 and u.max() < 1.0


def test_uniforms_are_24_bit_floats_from_the_top_bits():
    w = torch.tensor([0, 255, 256, MASK])
    assert counter_rng.uniform(w).tolist() == [0.0, 0.0, 2.0**-24, 1.0 - 2.0**-24]


def test_normals_have_the_moments_of_a_standard_normal():
    key, counter = _streams(2, seed=3)
    z = counter_rng.draw(key, counter, 25_000, normals=2).normals.reshape(-1).double()  # 1e5 values
    n = len(z)
    assert abs(float(z.mean())) < 4 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 4 * math.sqrt(2 / n)
    assert abs(float((z**3).mean())) < 4 * math.sqrt(15 / n)  # skewness 0
    assert abs(float((z**4).mean()) - 3) < 4 * math.sqrt(96 / n)  # kurtosis 3
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    assert float(z.abs().max()) <= math.sqrt(48 * math.log(2)) + 1e-5  # 24-bit Box-Muller bound


def test_the_two_normals_of_a_box_muller_pair_are_uncorrelated():
    key, counter = _streams(1, seed=4)
    z = counter_rng.draw(key, counter, 100_000, normals=2).normals[0].double()
    assert abs(float(torch.corrcoef(z.T)[0, 1])) < 4 / math.sqrt(len(z))
    # and their squares are uncorrelated too (the radius is shared, the angle uniform)
    assert abs(float(torch.corrcoef(z.square().T)[0, 1])) < 4 / math.sqrt(len(z))


def test_streams_keys_and_counters_are_uncorrelated():
    """Neighbouring keys, neighbouring counters and the elements of one draw: correlation ~ 0."""
    n = 50_000
    key, _ = _streams(2, seed=5)

    def at(k: int, c: int) -> torch.Tensor:
        return counter_rng.draw(key[k : k + 1], torch.tensor([c]), n, uniforms=1).uniforms.reshape(-1)

    pairs = {
        "neighbouring keys": (at(0, 0), at(1, 0)),
        "neighbouring counters": (at(0, 0), at(0, 1)),
        "counter 0 and 2^32": (at(0, 0), at(0, 2**32)),
        "neighbouring elements": (at(0, 7)[:-1], at(0, 7)[1:]),
    }
    for what, (a, b) in pairs.items():
        r = float(torch.corrcoef(torch.stack((a, b)).double())[0, 1])
        assert abs(r) < 4 / math.sqrt(len(a)), what
    w = counter_rng.words(key[:1], torch.tensor([0]), n, 4)[:, 0].double()  # the 4 words of a block
    c = torch.corrcoef(w)
    assert (c - torch.eye(4)).abs().max() < 4 / math.sqrt(n)


def test_draws_are_exactly_reproducible_and_the_same_alone_or_beside_other_streams():
    key, counter = _streams(30, seed=6)
    counter = torch.arange(30) * 7
    sizes = torch.arange(1, 31) * 13
    together = counter_rng.draw(key, counter, 256, sizes, uniforms=2, normals=3)
    again = counter_rng.draw(key, counter, 256, sizes, uniforms=2, normals=3)
    alone = counter_rng.draw(key[11:12], counter[11:12], 256, sizes[11:12], uniforms=2, normals=3)
    fields = [(d.rows, d.uniforms, d.normals) for d in (together, again, alone)]
    for a, b, c in zip(*fields, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a[11:12], c)
    assert together.normals.shape == (30, 256, 3) and together.uniforms.shape == (30, 256, 2)
    other = counter_rng.draw(key, counter + 1, 256, sizes, uniforms=2, normals=3)
    assert not torch.equal(together.uniforms, other.uniforms)


@pytest.mark.parametrize("m", [1, 2, 3, 7, 255, 256, 257, 20_000, 2**31])
def test_row_indices_lie_in_range_and_are_uniform_for_every_size(m):
    key, counter = _streams(1, seed=7)
    rows = counter_rng.draw(key, counter, 60_000, torch.tensor([m])).rows[0]
    assert int(rows.min()) >= 0 and int(rows.max()) < m
    if m <= 257:
        counts = np.bincount(rows.numpy(), minlength=m)
        assert len(counts) == m
        if m > 1:
            assert stats.chisquare(counts).pvalue > 1e-3
    else:
        assert stats.kstest(rows.double().numpy() / m, "uniform").pvalue > 1e-3


def test_below_is_exact_at_the_extreme_words():
    m = torch.tensor([1, 5, 20_000, 2**31])
    top = torch.full((4, 1), MASK)
    assert counter_rng.below(top, m)[:, 0].tolist() == [0, 4, 19_999, 2**31 - 1]
    assert counter_rng.below(torch.zeros(4, 1, dtype=torch.int64), m).sum() == 0


def test_each_stream_draws_rows_below_its_own_size():
    sizes = torch.tensor([1, 2, 60, 150, 2000, 20_000])
    key, counter = _streams(len(sizes), seed=8)
    rows = counter_rng.draw(key, counter, 4096, sizes).rows
    assert (rows >= 0).all() and (rows < sizes[:, None]).all()
    assert (rows.amax(1) == sizes - 1)[:4].all()  # the small ones reach their last row
