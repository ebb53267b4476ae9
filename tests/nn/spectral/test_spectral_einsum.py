"""``pair_einsum`` (one batched GEMM per operand pair) equals ``torch.einsum``, values and
gradients, whether or not its operands and output need a permute."""

from __future__ import annotations

import pytest
import torch

from factorch.nn.spectral._einsum import pair_einsum

_CASES = [
    ("abe,bce->ace", (3, 4, 5), (4, 2, 5)),  # batch last: both operands and the output permuted
    ("bq,abe->qae", (4, 2), (3, 4, 5)),  # no batch; the first operand transposed
    ("ab,bc->ac", (3, 4), (4, 2)),  # already in GEMM order: no permute at all
    ("eqr,cr->eqc", (5, 2, 3), (4, 3)),  # output order equals the GEMM's
    ("eab,ebc->eac", (2, 3, 4), (2, 4, 5)),  # batched, in order
    ("abc,cd->abd", (2, 3, 4), (4, 1)),  # a unit dimension
]


@pytest.mark.parametrize(("eq", "sa", "sb"), _CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_pair_einsum_equals_torch_einsum(
    eq: str, sa: tuple[int, ...], sb: tuple[int, ...], dtype: torch.dtype
) -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(sa, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(sb, generator=g, dtype=dtype, requires_grad=True)
    ours = pair_einsum(eq, a, b)
    ref = torch.einsum(eq, a, b)
    torch.testing.assert_close(ours, ref, rtol=1e-13, atol=1e-13)
    w = torch.randn(ref.shape, generator=g, dtype=dtype)
    got = torch.autograd.grad((ours * w).sum().real, (a, b))
    want = torch.autograd.grad((ref * w).sum().real, (a, b))
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-13)
