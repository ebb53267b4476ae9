"""CP-specific behaviour: normalize, canonicalize, factor match, conversions, repr."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.random import random_cp
from factorch.tensors import CPTensor, TTTensor, TuckerTensor
from factorch.testing import assert_close_tensors

F64 = torch.float64
DTYPES = [torch.float32, torch.float64]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scrambled(cp: CPTensor, seed: int) -> CPTensor:
    """Same tensor: columns permuted, rescaled by factors whose product per component is 1,
    and sign-flipped in pairs of modes (plus the weight)."""
    g = _gen(seed)
    rank, ndim = cp.rank, cp.ndim
    perm = torch.randperm(rank, generator=g)
    scales = torch.rand(ndim, rank, generator=g, dtype=F64) * 2 + 0.5
    signs = torch.where(torch.rand(ndim, rank, generator=g) < 0.5, -1.0, 1.0).to(F64)
    scales = scales * signs
    weights = cp.weights / scales.prod(0).to(cp.dtype)
    factors = [f * scales[n].to(cp.dtype) for n, f in enumerate(cp.factors)]
    return CPTensor(weights[perm], tuple(f[:, perm] for f in factors))


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_keeps_tensor_and_gives_unit_columns(dtype: torch.dtype) -> None:
    cp = _scrambled(random_cp((4, 5, 6), 3, generator=_gen(0), dtype=dtype), 1)
    out = cp.normalize()
    assert_close_tensors(out.to_dense(), cp.to_dense())
    for f in out.factors:
        assert_close_tensors(torch.linalg.vector_norm(f, dim=0), torch.ones(3, dtype=dtype))


def test_normalize_zero_column_gets_zero_weight() -> None:
    cp = random_cp((3, 4), 2, generator=_gen(2), dtype=F64)
    factors = (cp.factors[0], torch.cat([cp.factors[1][:, :1], torch.zeros(4, 1, dtype=F64)], 1))
    out = CPTensor(cp.weights, factors).normalize()
    assert out.weights[1] == 0
    assert torch.isfinite(out.factors[1]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 4, 5), (2, 3, 4, 3)])
def test_canonicalize_is_invariant(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    cp = random_cp(shape, 3, generator=_gen(3), dtype=dtype)
    ref = cp.canonicalize()
    for seed in range(4):
        other = _scrambled(cp, 10 + seed).canonicalize()
        assert_close_tensors(
            other.weights, ref.weights, rtol=1e-4 if dtype == torch.float32 else 1e-10
        )
        for a, b in zip(other.factors, ref.factors):
            assert_close_tensors(a, b, rtol=1e-4 if dtype == torch.float32 else 1e-10)
    assert_close_tensors(ref.to_dense(), cp.to_dense())
    assert bool((ref.weights >= 0).all()) and bool((ref.weights[:-1] >= ref.weights[1:]).all())
    cols = torch.arange(3)
    for f in ref.factors[:-1]:
        assert bool((f[f.abs().argmax(0), cols] > 0).all())


def test_canonicalize_complex_gives_real_weights_and_positive_pivots() -> None:
    cp = random_cp((3, 4, 2), 2, generator=_gen(4), dtype=torch.complex128)
    phases = torch.exp(1j * torch.tensor([[0.3, 2.0], [-1.0, 0.7], [0.7, -2.7]], dtype=F64))
    rotated = CPTensor(
        cp.weights / phases.prod(0), tuple(f * phases[n] for n, f in enumerate(cp.factors))
    )
    assert_close_tensors(rotated.to_dense(), cp.to_dense())
    ref, other = rotated.canonicalize(), cp.canonicalize()
    assert_close_tensors(ref.to_dense(), cp.to_dense())
    assert float(ref.weights.imag.abs().max()) == 0.0
    assert_close_tensors(ref.weights, other.weights, rtol=1e-10)
    for a, b in zip(ref.factors, other.factors):
        assert_close_tensors(a, b, rtol=1e-10)
    for f in ref.factors[:-1]:
        pivots = f[f.abs().argmax(0), torch.arange(2)]
        assert float(pivots.imag.abs().max()) < 1e-14 and bool((pivots.real > 0).all())


@pytest.mark.parametrize("rank", [3, 10])
def test_congruence_of_scrambled_copy_is_one(rank: int) -> None:
    cp = random_cp((6, 7, 8), rank, generator=_gen(5), dtype=F64)
    g = _gen(6)
    perm = torch.randperm(rank, generator=g)
    copy = CPTensor(cp.weights[perm] * 3.0, tuple(-f[:, perm] * 0.5 for f in cp.factors))
    match = cp.factor_match(copy)
    assert match.score == pytest.approx(1.0, abs=1e-12)
    assert match.exhaustive == (rank <= 8)
    # component r of cp sits at position p with perm[p] == r
    inverse = torch.argsort(perm)
    assert match.permutation == tuple(int(v) for v in inverse)
    assert cp.congruence(copy) == pytest.approx(1.0, abs=1e-12)


def test_congruence_of_unrelated_tensor_is_low() -> None:
    a = random_cp((10, 11, 12), 3, generator=_gen(7), dtype=F64)
    b = random_cp((10, 11, 12), 3, generator=_gen(8), dtype=F64)
    score = a.congruence(b)
    assert 0.0 <= score < 0.9


def test_factor_match_with_extra_components() -> None:
    small = random_cp((5, 6, 7), 2, generator=_gen(9), dtype=F64)
    noise = random_cp((5, 6, 7), 3, generator=_gen(10), dtype=F64)
    big = CPTensor(
        torch.cat([noise.weights[:2], small.weights, noise.weights[2:]]),
        tuple(torch.cat([f[:, :2], s, f[:, 2:]], 1) for f, s in zip(noise.factors, small.factors)),
    )
    match = small.factor_match(big)
    assert match.permutation == (2, 3)
    assert match.score == pytest.approx(1.0, abs=1e-12)
    assert len(match.congruences) == 2


def test_greedy_and_exhaustive_agree_on_clear_matches() -> None:
    cp = random_cp((8, 9, 10), 9, generator=_gen(11), dtype=F64)
    perm = torch.randperm(9, generator=_gen(12))
    copy = CPTensor(cp.weights[perm], tuple(f[:, perm] for f in cp.factors))
    match = cp.factor_match(copy)
    assert not match.exhaustive
    assert match.permutation == tuple(int(v) for v in torch.argsort(perm))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (4, 5), (3, 4, 5), (2, 3, 2, 3)])
def test_conversions_are_exact(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    cp = random_cp(shape, 3, generator=_gen(13), dtype=dtype)
    tucker = cp.to_tucker()
    assert isinstance(tucker, TuckerTensor) and tucker.rank == (3,) * len(shape)
    assert_close_tensors(tucker.to_dense(), cp.to_dense())
    tt = cp.to_tt()
    assert isinstance(tt, TTTensor)
    assert tt.rank == (1, *([3] * (len(shape) - 1)), 1)
    assert_close_tensors(tt.to_dense(), cp.to_dense())


def test_from_factors_uses_unit_weights() -> None:
    cp = random_cp((3, 4), 2, generator=_gen(14), dtype=F64)
    out = CPTensor.from_factors(list(cp.factors))
    assert torch.equal(out.weights, torch.ones(2, dtype=F64))
    assert isinstance(out.factors, tuple)


def test_repr_and_sizes() -> None:
    cp = random_cp((10, 20, 30), 5, generator=_gen(15), dtype=torch.float32)
    assert repr(cp) == (
        "CPTensor(shape=(10, 20, 30), rank=5, params=305, compression=19.7x, dtype=float32)"
    )
    assert cp.n_params == 305 and cp.ndim == 3 and cp.rank == 5
    assert cp.dtype == torch.float32 and cp.device == torch.device("cpu")


def test_to_changes_dtype_and_keeps_values() -> None:
    cp = random_cp((3, 4), 2, generator=_gen(16), dtype=F64)
    out = cp.to(dtype=torch.float32)
    assert out.dtype == torch.float32 and all(f.dtype == torch.float32 for f in out.factors)
    assert_close_tensors(out.to_dense(), cp.to_dense(), rtol=1e-6)


def test_is_immutable() -> None:
    cp = random_cp((3, 4), 2, generator=_gen(17), dtype=F64)
    with pytest.raises(AttributeError):
        cp.weights = torch.ones(2, dtype=F64)  # type: ignore[misc]


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300, 1e-300])
def test_norm_is_true_for_extreme_weights(scale: float) -> None:
    base = random_cp((4, 5, 6), 3, generator=_gen(30), dtype=F64)
    big = CPTensor(base.weights * scale, base.factors)
    # The same model with unit-scale weights, its norm multiplied back in Python floats.
    assert float(big.norm()) == pytest.approx(float(base.norm()) * scale, rel=1e-12, abs=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_with_huge_and_tiny_factors(dtype: torch.dtype) -> None:
    base = random_cp((4, 5, 6), 2, generator=_gen(31), dtype=dtype)
    # Factors of 1e20 and 1e-20 cancel in the product; their Grams alone over/underflow float32.
    scaled = CPTensor(
        base.weights, (base.factors[0] * 1e20, base.factors[1] * 1e-20, base.factors[2])
    )
    assert float(scaled.norm()) == pytest.approx(float(base.norm()), rel=1e-5)


def test_norm_overflows_only_when_the_norm_does() -> None:
    ones = CPTensor(torch.tensor([6e4]), (torch.ones(3, 1), torch.ones(4, 1)))
    assert float(ones.norm()) == pytest.approx(6e4 * 12**0.5)
    half = ones.to(dtype=torch.float16)
    assert torch.isinf(half.norm())  # 2.1e5 exceeds float16's range


def test_norm_gradient_with_scaling() -> None:
    w = (torch.rand(3, generator=_gen(32), dtype=F64) * 1e150).requires_grad_(True)
    fs = tuple(torch.rand(s, 3, generator=_gen(33 + s), dtype=F64) for s in (4, 5))
    torch.autograd.gradcheck(lambda w: CPTensor(w / 1e150, fs).norm(), (w,))


# --- TensorLy-style unpacking (issue 11, item 10) --------------------------------------------


def test_unpacks_as_weights_and_factors_like_tensorly() -> None:
    tl = pytest.importorskip("tensorly")
    cp = random_cp((3, 4, 5), 2, generator=_gen(0), dtype=F64)
    weights, factors = cp
    assert weights is cp.weights and factors is cp.factors
    assert len(cp) == 2 and cp[0] is cp.weights and cp[1] is cp.factors and cp[-1] is cp.factors
    assert list(cp) == [cp.weights, cp.factors] and cp[np.int64(1)] is cp.factors
    # TensorLy reads a factorch CP tensor through the same protocol.
    w, f = tl.cp_tensor.CPTensor((cp.weights.numpy(), [a.numpy() for a in cp.factors]))
    dense = tl.cp_to_tensor((w, f))
    assert_close_tensors(torch.from_numpy(dense), cp.to_dense())
    rebuilt = CPTensor(*cp)
    assert_close_tensors(rebuilt.to_dense(), cp.to_dense())


def test_unpacking_keeps_frozen_identity_equality_and_dataclass_behaviour() -> None:
    import collections.abc
    import copy
    import dataclasses
    import pickle

    cp = random_cp((3, 4), 2, generator=_gen(1), dtype=F64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.weights = cp.weights  # type: ignore[misc]
    twin = CPTensor(cp.weights, cp.factors)
    assert cp == cp and cp != twin  # identity equality, never an entry-wise comparison
    assert hash(cp) == hash(cp) and bool(cp)
    assert not isinstance(cp, collections.abc.Sequence)
    assert [f.name for f in dataclasses.fields(cp)] == ["weights", "factors"]
    replaced = dataclasses.replace(cp, weights=2 * cp.weights)
    assert_close_tensors(replaced.to_dense(), 2 * cp.to_dense())
    for clone in (copy.deepcopy(cp), pickle.loads(pickle.dumps(cp))):
        assert isinstance(clone, CPTensor)
        assert_close_tensors(clone.to_dense(), cp.to_dense())


@pytest.mark.parametrize(
    ("index", "exc", "match"),
    [
        (2, IndexError, r"CPTensor: index must be 0 \(weights\) or 1 \(factors\); got 2\."),
        (-3, IndexError, r"CPTensor: index must be 0 \(weights\) or 1 \(factors\); got -3\."),
        ("weights", TypeError, r"CPTensor: index must be 0 .* got str\. Use \.entries"),
        (True, TypeError, r"CPTensor: index must be 0 .* got bool\."),
        (slice(0, 1), TypeError, r"CPTensor: index must be 0 .* got slice\."),
    ],
)
def test_bad_unpacking_index(index: object, exc: type[Exception], match: str) -> None:
    cp = random_cp((3, 4), 2, generator=_gen(2), dtype=F64)
    with pytest.raises(exc, match=match):
        cp[index]  # type: ignore[index]
