"""Inner products and norms of dense tensors."""

from __future__ import annotations

import torch

from .._checks import check_same_device_dtype, check_tensor

__all__ = ["inner", "norm"]


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Frobenius inner product ``<a, b> = sum conj(a) * b`` (plain ``sum a*b`` for real tensors).

    Returns a 0-d tensor; differentiable. Shapes must match exactly.
    """
    fn = "inner"
    check_tensor(a, fn, "a", finite=False, nonempty=False)
    check_tensor(b, fn, "b", finite=False, nonempty=False)
    check_same_device_dtype([a, b], fn, "(a, b)")
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: a and b must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    return torch.vdot(a.reshape(-1), b.reshape(-1))


def norm(tensor: torch.Tensor, order: int = 2) -> torch.Tensor:
    """Entry-wise ``order``-norm (2: Frobenius, 1: sum of absolute values). Differentiable."""
    fn = "norm"
    check_tensor(tensor, fn, "tensor", finite=False, nonempty=False)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"{fn}: order must be 1 or 2; got {order!r}.")
    return torch.linalg.vector_norm(tensor, ord=order)
