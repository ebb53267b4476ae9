"""Mode products, Khatri--Rao and Kronecker products."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import reduce

import torch

from .._checks import as_index, check_mode, check_same_device_dtype, check_tensor
from .._numerics import check_memory
from ._args import as_array
from ._scaling import check_overflow

__all__ = ["khatri_rao", "kron", "mode_dot", "multi_mode_dot"]


def _mode_dot(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """``tensor x_mode matrix`` without validation; ``matrix`` is (J, I_mode) or a vector (I_mode,).

    Contracts on reshaped views of the tensor (no permuted copy of the input): the last mode is
    one GEMM on ``(prod, I) @ (I, J)``, other modes a (batched) GEMM ``M @ X(L, I, T)``.
    """
    shape = list(tensor.shape)
    size = shape[mode]
    lead = 1
    for s in shape[:mode]:
        lead *= s
    if matrix.ndim == 1:
        if mode == tensor.ndim - 1:
            out = tensor.reshape(-1, size) @ matrix
        else:
            out = torch.einsum("lit,i->lt", tensor.reshape(lead, size, -1), matrix)
        return out.reshape(shape[:mode] + shape[mode + 1 :])
    j = matrix.shape[0]
    if mode == tensor.ndim - 1:
        out = tensor.reshape(-1, size) @ matrix.transpose(0, 1)
    elif lead == 1:
        out = matrix @ tensor.reshape(size, -1)
    else:
        out = torch.matmul(matrix, tensor.reshape(lead, size, -1))
    return out.reshape([*shape[:mode], j, *shape[mode + 1 :]])


def _out_entries(shape: Sequence[int], mode: int, rows: int | None) -> int:
    """Entries of ``tensor x_mode M`` for ``M`` with ``rows`` rows (None: a vector)."""
    rest = math.prod(shape) // shape[mode]
    return rest if rows is None else rest * rows


def mode_dot(
    tensor: torch.Tensor, matrix: torch.Tensor, mode: int, *, transpose: bool = False
) -> torch.Tensor:
    """n-mode product ``tensor x_mode matrix``.

    ``result[..., j, ...] = sum_i tensor[..., i, ...] * matrix[j, i]``. With ``transpose=True``
    the transpose (conjugate transpose for complex) of ``matrix`` is used. A vector contracts the
    mode away.

    Args:
        tensor: a floating or complex tensor (numpy arrays accepted).
        matrix: a ``(J, I_mode)`` matrix or an ``(I_mode,)`` vector of the same dtype and device.
        mode: the mode to contract (negative values count from the end).
        transpose: use ``matrix^H`` (``(I_mode, J)`` given).

    Returns:
        The product, in the inputs' dtype and device.

    Raises:
        TypeError: non-tensor input, integer dtypes, mismatched dtypes.
        ValueError: shapes disagree; the output would not fit in the device's memory.
        IndexError: ``mode`` out of range.

    Differentiable; under autocast it computes like the ``torch.matmul`` it is made of.

    Example:
        >>> mode_dot(torch.ones(2, 3, 4), torch.ones(5, 3), 1).shape
        torch.Size([2, 5, 4])
    """
    fn = "mode_dot"
    tensor = as_array(tensor, fn)
    matrix = as_array(matrix, fn, "matrix")
    check_tensor(tensor, fn, "tensor", min_ndim=1, finite=False)
    check_tensor(matrix, fn, "matrix", finite=False)
    if matrix.ndim not in (1, 2):
        raise ValueError(
            f"{fn}: matrix must be a matrix or a vector; got shape {tuple(matrix.shape)}."
        )
    check_same_device_dtype([tensor, matrix], fn, "(tensor, matrix)")
    mode = check_mode(as_index(mode, fn, "mode"), tensor.ndim, fn)
    if transpose and matrix.ndim == 2:
        matrix = matrix.mH
    if matrix.shape[-1] != tensor.shape[mode]:
        raise ValueError(
            f"{fn}: matrix has {matrix.shape[-1]} columns but tensor has size "
            f"{tensor.shape[mode]} along mode {mode}; shapes must agree"
            + (" (transpose=True transposes the matrix first)." if transpose else ".")
        )
    rows = matrix.shape[0] if matrix.ndim == 2 else None
    check_memory(
        _out_entries(tensor.shape, mode, rows),
        tensor.dtype,
        tensor.device,
        fn,
        "the product",
        hint="use a smaller matrix",
    )
    out = _mode_dot(tensor, matrix, mode)
    check_overflow(out, [tensor, matrix], fn, "product")
    return out


def multi_mode_dot(
    tensor: torch.Tensor,
    matrices: Sequence[torch.Tensor],
    modes: Sequence[int] | None = None,
    *,
    skip: int | None = None,
    transpose: bool = False,
) -> torch.Tensor:
    """Successive mode products ``tensor x_{m0} M0 x_{m1} M1 ...``.

    ``modes`` defaults to ``0..len(matrices)-1``; ``skip`` names a *mode* to leave out (the
    matrix listed for that mode is ignored). With the default ``modes`` this is TensorLy's
    ``skip``; with explicit ``modes`` TensorLy's ``skip`` counts positions in the list instead.
    Vectors contract their modes away; modes are processed so that earlier contractions do not
    shift later ones.

    Args:
        tensor: a floating or complex tensor (numpy arrays accepted).
        matrices: one matrix ``(J_m, I_m)`` or vector ``(I_m,)`` per listed mode.
        modes: the modes, distinct (default ``0, 1, ...``).
        skip: a mode to leave out.
        transpose: use each matrix's conjugate transpose.

    Returns:
        The product, in the inputs' dtype and device.

    Raises:
        TypeError: non-tensor input or mismatched dtypes.
        ValueError: counts or shapes disagree; repeated modes; an intermediate would not fit in
            the device's memory.
        IndexError: a mode out of range.

    Differentiable; under autocast it computes like ``torch.matmul``.

    Example:
        >>> x = torch.ones(2, 3, 4)
        >>> multi_mode_dot(x, [torch.ones(5, 2), torch.ones(6, 3)], [0, 1]).shape
        torch.Size([5, 6, 4])
    """
    fn = "multi_mode_dot"
    tensor = as_array(tensor, fn)
    check_tensor(tensor, fn, "tensor", min_ndim=1, finite=False)
    if isinstance(matrices, torch.Tensor) or not isinstance(matrices, Sequence):
        raise TypeError(
            f"{fn}: matrices must be a sequence of tensors; got {type(matrices).__name__}."
        )
    if modes is None:
        modes = list(range(len(matrices)))
    if isinstance(modes, (str, bytes)) or not isinstance(modes, Sequence):
        raise TypeError(f"{fn}: modes must be a sequence of ints; got {type(modes).__name__}.")
    if len(modes) != len(matrices):
        raise ValueError(
            f"{fn}: got {len(matrices)} matrices but {len(modes)} modes; give one mode per matrix."
        )
    norm_modes = [check_mode(as_index(m, fn, "mode"), tensor.ndim, fn) for m in modes]
    if len(set(norm_modes)) != len(norm_modes):
        raise ValueError(f"{fn}: modes must be distinct; got {tuple(modes)}.")
    if skip is not None:
        skip = check_mode(as_index(skip, fn, "skip"), tensor.ndim, fn, "skip")
    pairs = []
    for i, (m, mat) in enumerate(zip(norm_modes, matrices)):
        if m == skip:
            continue
        mat = as_array(mat, fn, f"matrices[{i}]")
        check_tensor(mat, fn, f"matrices[{i}]", finite=False)
        if mat.ndim not in (1, 2):
            raise ValueError(
                f"{fn}: matrices[{i}] must be a matrix or vector; got {tuple(mat.shape)}."
            )
        check_same_device_dtype([tensor, mat], fn, "(tensor, matrix)")
        cols = mat.shape[0] if (transpose and mat.ndim == 2) else mat.shape[-1]
        if cols != tensor.shape[m]:
            raise ValueError(
                f"{fn}: matrix for mode {m} contracts {cols} entries but the tensor has size "
                f"{tensor.shape[m]} along mode {m}."
            )
        pairs.append((m, mat.mH if transpose and mat.ndim == 2 else mat))
    # Apply vector contractions from the highest mode down so remaining mode indices stay valid.
    order = sorted(pairs, key=lambda p: (p[1].ndim == 1, -p[0] if p[1].ndim == 1 else p[0]))
    shape = list(tensor.shape)
    for m, mat in order:
        rows = mat.shape[0] if mat.ndim == 2 else None
        check_memory(
            _out_entries(shape, m, rows),
            tensor.dtype,
            tensor.device,
            fn,
            "an intermediate",
            hint="use smaller matrices",
        )
        if rows is None:
            del shape[m]
        else:
            shape[m] = rows
    out = tensor
    for m, mat in order:
        out = _mode_dot(out, mat, m)
    check_overflow(out, [tensor, *(mat for _, mat in order)], fn, "product")
    return out


def _khatri_rao(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    rank = matrices[0].shape[1]
    return reduce(lambda a, b: (a[:, None, :] * b[None, :, :]).reshape(-1, rank), matrices)


def khatri_rao(
    matrices: Sequence[torch.Tensor],
    *,
    weights: torch.Tensor | None = None,
    skip: int | None = None,
) -> torch.Tensor:
    """Column-wise Kronecker (Khatri--Rao) product, TensorLy's order.

    For matrices ``A (I x R), B (J x R)`` the result is ``(I*J) x R`` with row ``i*J + j`` equal to
    ``A[i] * B[j]`` (the first matrix's index varies slowest).

    Args:
        matrices: 2-D tensors with one number of columns ``R`` (numpy arrays accepted).
        weights: optional ``(R,)`` column scales.
        skip: index of a matrix to leave out.

    Returns:
        ``(prod I_k, R)`` tensor in the inputs' dtype and device.

    Raises:
        TypeError: non-tensor input or mismatched dtypes.
        ValueError: no matrices; column counts disagree; the result would not fit in the
            device's memory (checked before allocating: three 100000 x 2 matrices ask for 16 PB).
        IndexError: ``skip`` out of range.

    Differentiable; element-wise products, so autocast leaves the dtype alone.

    Example:
        >>> khatri_rao([torch.ones(2, 3), torch.ones(4, 3)]).shape
        torch.Size([8, 3])
    """
    fn = "khatri_rao"
    if isinstance(matrices, torch.Tensor) or not isinstance(matrices, Sequence):
        raise TypeError(
            f"{fn}: matrices must be a sequence of 2-D tensors; got {type(matrices).__name__}."
        )
    if skip is not None:
        skip = check_mode(as_index(skip, fn, "skip"), len(matrices), fn, "skip")
    mats = [as_array(m, fn, f"matrices[{i}]") for i, m in enumerate(matrices) if i != skip]
    if len(mats) == 0:
        raise ValueError(f"{fn}: need at least one matrix; got none.")
    for i, m in enumerate(mats):
        check_tensor(m, fn, f"matrices[{i}]", ndim=2, finite=False)
    check_same_device_dtype(mats, fn, "matrices")
    rank = mats[0].shape[1]
    for i, m in enumerate(mats):
        if m.shape[1] != rank:
            raise ValueError(
                f"{fn}: all matrices must have the same number of columns; matrices[0] has "
                f"{rank} and matrices[{i}] has {m.shape[1]}."
            )
    if weights is not None:
        weights = as_array(weights, fn, "weights")
        check_tensor(weights, fn, "weights", ndim=1, finite=False)
        check_same_device_dtype([mats[0], weights], fn, "(matrices[0], weights)")
        if weights.shape[0] != rank:
            raise ValueError(f"{fn}: weights must have {rank} entries; got {weights.shape[0]}.")
    rows = math.prod(m.shape[0] for m in mats)
    check_memory(
        rows * rank,
        mats[0].dtype,
        mats[0].device,
        fn,
        f"the ({rows}, {rank}) result",
        hint="use fewer or smaller matrices",
    )
    out = _khatri_rao(mats)
    out = out if weights is None else out * weights
    check_overflow(out, [*mats, *([] if weights is None else [weights])], fn)
    return out


def kron(*matrices: torch.Tensor) -> torch.Tensor:
    """Kronecker product of one or more matrices.

    ``kron(A, B)[i*J + j, k*L + l] = A[i, k] B[j, l]``; more matrices associate left to right. A
    single list or tuple of matrices is accepted too.

    Args:
        *matrices: 2-D tensors of one dtype and device (numpy arrays accepted).

    Returns:
        ``(prod rows, prod cols)`` tensor.

    Raises:
        TypeError: non-tensor input or mismatched dtypes.
        ValueError: no matrices; the result would not fit in the device's memory.

    Differentiable; like ``torch.kron`` under autocast.

    Example:
        >>> kron(torch.eye(2), torch.ones(2, 3)).shape
        torch.Size([4, 6])
    """
    fn = "kron"
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = tuple(matrices[0])
    if len(matrices) == 0:
        raise ValueError(f"{fn}: need at least one matrix; got none.")
    mats = [as_array(m, fn, f"matrices[{i}]") for i, m in enumerate(matrices)]
    for i, m in enumerate(mats):
        check_tensor(m, fn, f"matrices[{i}]", ndim=2, finite=False)
    check_same_device_dtype(mats, fn, "matrices")
    rows = math.prod(m.shape[0] for m in mats)
    cols = math.prod(m.shape[1] for m in mats)
    check_memory(
        rows * cols,
        mats[0].dtype,
        mats[0].device,
        fn,
        f"the ({rows}, {cols}) result",
        hint="use fewer or smaller matrices",
    )
    out = reduce(torch.kron, mats)
    check_overflow(out, mats, fn)
    return out
