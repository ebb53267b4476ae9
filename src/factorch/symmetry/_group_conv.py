r"""Monte-Carlo lifting and group convolution for matrix Lie groups (small inputs).

For the affine group :math:`\mathbb R^d \rtimes G` (:math:`G` = SO(d), GL⁺(d), SL(d), ...),

* **lifting** maps a point cloud with features :math:`(y_j, f_j)` to a function on the group,

  .. math:: (k \star f)(x, g) = \frac1N \sum_j k\bigl(g^{-1}(y_j - x)\bigr) f_j,

  so that transforming the cloud by :math:`(b, A)` moves the lifted function:
  :math:`(k \star f')(Ax + b, Ag) = (k \star f)(x, g)`;
* **group convolution** of a function :math:`F` on :math:`G` known at elements :math:`h_i` with
  Monte-Carlo weights :math:`w_i` (:func:`haar_sample`),

  .. math:: (k \star F)(g) \approx \frac1M \sum_i e^{w_i} k\bigl(ξ(h_i^{-1} g)\bigr) F(h_i),

  where :math:`ξ` is the global chart of :func:`lie_chart` and :math:`k` any function of the chart
  coordinates (e.g. an MLP); it is exactly equivariant to left translations of the samples
  (:math:`h_i \to a h_i`, :math:`g \to a g`) and, in expectation, to left translations of
  :math:`F` alone (the Haar weights make the estimate unbiased).

Reference:
    M. Mironenco, P. Forré, Lie group decompositions for equivariant neural networks, ICLR 2024.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import check_real_tensor
from ._lie import _check_square, lie_chart

__all__ = ["group_convolution", "lift"]

Kernel = Callable[[torch.Tensor], torch.Tensor]


def _kernel_out(kernel: object, coords: torch.Tensor, c_in: int, fn: str) -> torch.Tensor:
    if not callable(kernel):
        raise TypeError(
            f"{fn}: kernel must be a callable (e.g. an nn.Module); got {type(kernel).__name__}."
        )
    out = kernel(coords)
    if (
        not isinstance(out, torch.Tensor)
        or out.shape[: coords.ndim - 1] != coords.shape[:-1]
        or out.ndim != coords.ndim + 1
        or out.shape[-1] != c_in
    ):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{fn}: kernel must map coordinates (..., k) to (..., c_out, {c_in}) matrices "
            f"(c_in = the features' last dimension); got {got} for input {tuple(coords.shape)}."
        )
    return out


def lift(
    kernel: Kernel,
    points: torch.Tensor,
    features: torch.Tensor,
    translations: torch.Tensor,
    elements: torch.Tensor,
) -> torch.Tensor:
    r"""Lift a point cloud to the affine group: :math:`\frac1N\sum_j k(g_i^{-1}(y_j - x_i)) f_j`.

    Args:
        kernel: maps relative coordinates ``(..., d)`` to ``(..., c_out, c_in)`` matrices.
        points: ``(N, d)`` point positions :math:`y_j`.
        features: ``(N, c_in)`` point features :math:`f_j`.
        translations: ``(M, d)`` translation parts :math:`x_i` of the group elements.
        elements: ``(M, d, d)`` linear parts :math:`g_i` (invertible).

    Returns:
        ``(M, c_out)``; differentiable in everything.

    Raises:
        TypeError: non-tensors, non-floating dtypes, a non-callable kernel.
        ValueError: inconsistent shapes, non-finite entries, a kernel of the wrong output shape.

    Example:
        >>> k = lambda u: u.norm(dim=-1)[..., None, None]  # (..., 1, 1)
        >>> pts, f = torch.randn(5, 2), torch.ones(5, 1)
        >>> lift(k, pts, f, torch.zeros(1, 2), torch.eye(2)[None]).shape
        torch.Size([1, 1])
    """
    fn = "lift"
    points = check_real_tensor(points, fn, "points", min_ndim=2)
    d = points.shape[-1]
    features = check_real_tensor(features, fn, "features", min_ndim=2)
    translations = check_real_tensor(translations, fn, "translations", min_ndim=2, last_dim=d)
    elements = _check_square(elements, fn, "elements")
    if points.ndim != 2 or features.ndim != 2 or features.shape[0] != points.shape[0]:
        raise ValueError(
            f"{fn}: points must be (N, d) and features (N, c_in) with the same N; got "
            f"{tuple(points.shape)} and {tuple(features.shape)}."
        )
    if elements.ndim != 3 or elements.shape[-1] != d or elements.shape[0] != translations.shape[0]:
        raise ValueError(
            f"{fn}: elements must be (M, {d}, {d}) matching translations (M, {d}); got "
            f"{tuple(elements.shape)} and {tuple(translations.shape)}."
        )
    rel = points[None, :, :] - translations[:, None, :]  # (M, N, d)
    local = torch.linalg.solve(elements[:, None], rel[..., None])[..., 0]  # g^{-1}(y - x)
    k = _kernel_out(kernel, local, features.shape[-1], fn)  # (M, N, c_out, c_in)
    return torch.einsum("mnoc,nc->mo", k, features) / points.shape[0]


def group_convolution(
    kernel: Kernel,
    elements: torch.Tensor,
    values: torch.Tensor,
    queries: torch.Tensor,
    *,
    log_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Monte-Carlo group convolution :math:`\frac1M\sum_i e^{w_i} k(ξ(h_i^{-1} g)) F(h_i)`.

    Args:
        kernel: maps chart coordinates (:func:`lie_chart`, ``(..., n^2)``) to
            ``(..., c_out, c_in)`` matrices.
        elements: ``(M, n, n)`` sample elements :math:`h_i` with positive determinant.
        values: ``(M, c_in)`` the function's values :math:`F(h_i)`.
        queries: ``(Q, n, n)`` elements :math:`g` where the convolution is evaluated.
        log_weights: ``(M,)`` Monte-Carlo log weights (:attr:`GroupSample.log_weights`);
            ``None`` for exact Haar samples of a compact group.

    Returns:
        ``(Q, c_out)``; differentiable in ``values`` and the kernel's parameters.

    Raises:
        TypeError: non-tensors, non-floating dtypes, a non-callable kernel.
        ValueError: inconsistent shapes, non-finite entries, elements with non-positive
            determinant (outside GL⁺(n)), a kernel of the wrong output shape.

    Example:
        >>> h = haar_sample("SO", 2, 64, generator=torch.Generator().manual_seed(0)).elements
        >>> k = lambda c: torch.cos(c[..., -1])[..., None, None]
        >>> group_convolution(k, h, torch.ones(64, 1), torch.eye(2)[None]).shape
        torch.Size([1, 1])
    """
    fn = "group_convolution"
    elements = _check_square(elements, fn, "elements")
    queries = _check_square(queries, fn, "queries")
    values = check_real_tensor(values, fn, "values", min_ndim=2)
    n = elements.shape[-1]
    if elements.ndim != 3 or queries.ndim != 3 or queries.shape[-1] != n:
        raise ValueError(
            f"{fn}: elements must be (M, n, n) and queries (Q, n, n) with one n; got "
            f"{tuple(elements.shape)} and {tuple(queries.shape)}."
        )
    if values.ndim != 2 or values.shape[0] != elements.shape[0]:
        raise ValueError(
            f"{fn}: values must be (M, c_in) with M = {elements.shape[0]} elements; got "
            f"{tuple(values.shape)}."
        )
    m = elements.shape[0]
    if log_weights is None:
        weights = values.new_ones(m)
    else:
        log_weights = check_real_tensor(log_weights, fn, "log_weights")
        if log_weights.shape != (m,):
            raise ValueError(
                f"{fn}: log_weights must have shape ({m},); got {tuple(log_weights.shape)}."
            )
        weights = torch.exp(log_weights.to(values.dtype))
    rel = torch.linalg.solve(elements[None], queries[:, None])  # h^{-1} g: (Q, M, n, n)
    coords = lie_chart(rel)
    k = _kernel_out(kernel, coords, values.shape[-1], fn)  # (Q, M, c_out, c_in)
    return torch.einsum("qmoc,mc,m->qo", k, values, weights) / m
