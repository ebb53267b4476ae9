"""Every type on CUDA agrees with the CPU (skipped where no CUDA device exists)."""

from __future__ import annotations

import pytest
import torch

from factorch.random import random_cp, random_tr, random_tt, random_tt_matrix, random_tucker
from factorch.tensors import CPTensor, TTTensor
from factorch.testing import assert_close_tensors

pytestmark = [
    pytest.mark.cuda,
]

SHAPE = (4, 5, 6)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _tensors(dtype: torch.dtype) -> list:
    return [
        random_cp(SHAPE, 3, generator=_gen(), dtype=dtype),
        random_tucker(SHAPE, (2, 3, 2), generator=_gen(), dtype=dtype),
        random_tt(SHAPE, 3, generator=_gen(), dtype=dtype),
        random_tr(SHAPE, 2, generator=_gen(), dtype=dtype),
        random_tt_matrix((2, 3), (3, 2), 3, generator=_gen(), dtype=dtype),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", range(5))
def test_cuda_matches_cpu(index: int, dtype: torch.dtype) -> None:
    cpu = _tensors(dtype)[index]
    gpu = cpu.to(device="cuda")
    assert gpu.device.type == "cuda" and "device=cuda" in repr(gpu)
    assert_close_tensors(gpu.to_dense(), cpu.to_dense())
    assert_close_tensors(gpu.norm(), cpu.norm())
    assert gpu.norm().device.type == "cuda"
    idx = torch.stack([torch.arange(4) % s for s in cpu.shape], dim=1)
    got = gpu.entries(idx.cuda())
    assert got.device.type == "cuda"
    assert_close_tensors(got, cpu.entries(idx))
    assert_close_tensors(gpu.inner(gpu), cpu.inner(cpu))


def test_random_constructors_identical_across_devices() -> None:
    cpu = random_tt(SHAPE, 3, generator=_gen(), dtype=torch.float64)
    gpu = random_tt(SHAPE, 3, generator=_gen(), dtype=torch.float64, device="cuda")
    for a, b in zip(cpu.cores, gpu.cores):
        assert torch.equal(a, b.cpu())


def test_mixed_devices_are_refused() -> None:
    cp = random_cp(SHAPE, 2, generator=_gen(), dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"CPTensor: factors\[1\] is on cuda:0 but weights is on cpu"
    ):
        CPTensor(cp.weights, (cp.factors[0], cp.factors[1].cuda(), cp.factors[2]))
    tt = random_tt(SHAPE, 2, generator=_gen(), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"TTTensor.inner: other is on cuda:0 but self is on cpu"):
        tt.inner(tt.to_dense().cuda())
    with pytest.raises(
        ValueError, match=r"TTTensor: cores\[2\] is on cuda:0 but cores\[0\] is on cpu"
    ):
        TTTensor((tt.cores[0], tt.cores[1], tt.cores[2].cuda()))
    with pytest.raises(
        ValueError, match=r"TTTensor.mode_dot: matrix is on cuda:0 but the tensor is on cpu"
    ):
        tt.mode_dot(torch.ones(2, 5, dtype=torch.float64, device="cuda"), 1)
    ttm = random_tt_matrix((2, 3), (3, 2), 2, generator=_gen(), dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"TTMatrix.apply: x is on cuda:0 but the TT-matrix is on cpu"
    ):
        ttm.apply(torch.ones(3, 6, dtype=torch.float64, device="cuda"))
