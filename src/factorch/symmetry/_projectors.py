r"""Orthogonal projectors onto equivariant weight matrices.

A weight :math:`W \in \mathbb R^{d_{out} \times d_{in}}` is equivariant between representations
:math:`ρ_{in}, ρ_{out}` of a group given by Lie-algebra generators :math:`A_i` and discrete
generators :math:`h_j` when

.. math::

    ρ_{out}(A_i) W - W ρ_{in}(A_i) = 0, \qquad ρ_{out}(h_j) W - W ρ_{in}(h_j) = 0,

i.e. :math:`\mathrm{vec}(W)` lies in the null space of the stacked Kronecker-structured operators
:math:`ρ_{out}(g) \otimes I - I \otimes ρ_{in}(g)^T` (row-major ``vec``). The orthogonal projector
onto that null space, :math:`P = QQ^T` for an orthonormal basis :math:`Q`, is what the soft
equivariance regulariser of Kim et al. (2023) measures a weight against (:math:`\|W - PW\|`), and
what EMLP (Finzi et al., 2021) builds its layers from.

Structure used (no ``d_out d_in``-squared matrix is formed):

* **Block pairs.** Both representations are direct sums of blocks (with multiplicities); the
  constraint acts on each (output block, input block) sub-matrix of :math:`W` independently, so
  :math:`P` is block diagonal over block pairs, and all copies of a block pair share one basis --
  the projector of ``k`` copies of ``V`` to ``m`` copies of ``V`` costs one ``3 x 3`` problem.
* **Small block pairs** (``d_b d_a <= 256``): the null space of the Gram matrix
  :math:`\sum_g K_g^T K_g` of the block pair's Kronecker constraints (``eigh``).
* **Large block pairs**: the Sylvester form :math:`B W = W A` of the first constraint is solved
  exactly from the eigendecompositions of :math:`B` and :math:`A` (:math:`W = U X V^{-1}` with
  :math:`X_{ij} \ne 0` only where the eigenvalues match), then the other constraints are imposed
  in that (much smaller) basis, applied as matrix products :math:`B_g W - W A_g` -- never as
  Kronecker matrices. (Needs diagonalisable generators, as those of compact groups are; otherwise
  the dense route is used within the memory limit.)

References:
    H. Kim, H. Lee, H. Yang, J. Lee, Regularizing towards soft equivariance under mixed
    symmetries, ICML 2023.
    M. Finzi, M. Welling, A. G. Wilson, A practical method for constructing equivariant
    multilayer perceptrons for arbitrary matrix groups, ICML 2021.
"""

from __future__ import annotations

import dataclasses

import torch

from .._numerics import check_memory
from ._representations import RepBlock, Representation

__all__ = ["EquivariantProjector", "equivariant_projector"]

_DENSE_LIMIT = 256


@dataclasses.dataclass(frozen=True, eq=False)
class _Piece:
    row: int  # first row of the output block's copies
    col: int  # first column of the input block's copies
    mult_out: int
    mult_in: int
    dim_out: int
    dim_in: int
    basis: torch.Tensor  # (dim_out * dim_in, r) orthonormal, float64 CPU


@dataclasses.dataclass(frozen=True, eq=False)
class EquivariantProjector:
    """The orthogonal projector onto equivariant ``(dim_out, dim_in)`` weights.

    Call it on a weight matrix (differentiable; dtype and device follow the weight). ``rank`` is
    the dimension of the equivariant subspace. :meth:`dense` returns the full
    ``(dim_out dim_in)``-square matrix (row-major ``vec``), for checks on small problems.
    Built by :func:`equivariant_projector`.

    Attributes:
        dim_in: the input representation's dimension.
        dim_out: the output representation's dimension.
        rank: the dimension of the equivariant subspace.
        pieces: the orthonormal equivariant bases, one per pair of input and output blocks
            (internal records, float64 on the CPU).

    Example:
        >>> g = rotation_group(3, reflections=True)
        >>> p = equivariant_projector(g.vector(), g.vector())
        >>> p.rank, torch.allclose(p(torch.eye(3)), torch.eye(3))
        (1, True)
    """

    dim_in: int
    dim_out: int
    rank: int
    pieces: tuple[_Piece, ...]
    _cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def _bases(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = tuple(p.basis.to(dtype=dtype, device=device) for p in self.pieces)
        return self._cache[key]

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        fn = "EquivariantProjector"
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{fn}: weight must be a torch.Tensor; got {type(weight).__name__}.")
        if not weight.is_floating_point():
            raise TypeError(
                f"{fn}: weight must have a real floating-point dtype; got {weight.dtype}."
            )
        if weight.shape[-2:] != (self.dim_out, self.dim_in):
            raise ValueError(
                f"{fn}: weight must have shape (..., {self.dim_out}, {self.dim_in}) (output "
                f"dimension first, as nn.Linear.weight); got {tuple(weight.shape)}."
            )
        lead = weight.shape[:-2]
        out = weight.new_zeros(weight.shape)
        for piece, q in zip(self.pieces, self._bases(weight.dtype, weight.device)):
            rows = slice(piece.row, piece.row + piece.mult_out * piece.dim_out)
            cols = slice(piece.col, piece.col + piece.mult_in * piece.dim_in)
            if q.shape[1] == 0:
                continue
            region = weight[..., rows, cols].reshape(
                *lead, piece.mult_out, piece.dim_out, piece.mult_in, piece.dim_in
            )
            flat = region.transpose(-3, -2).reshape(*lead, piece.mult_out, piece.mult_in, -1)
            proj = (flat @ q) @ q.T
            proj = proj.reshape(*lead, piece.mult_out, piece.mult_in, piece.dim_out, piece.dim_in)
            out[..., rows, cols] = proj.transpose(-3, -2).reshape(*lead, rows.stop - rows.start, -1)
        return out

    def dense(self) -> torch.Tensor:
        """The projector as a ``(dim_out dim_in, dim_out dim_in)`` float64 matrix."""
        n = self.dim_out * self.dim_in
        check_memory(
            n * n, torch.float64, "cpu", "EquivariantProjector.dense", "the dense projector"
        )
        eye = torch.eye(n, dtype=torch.float64).reshape(n, self.dim_out, self.dim_in)
        return self(eye).reshape(n, n).T.contiguous()


def _constraints(b_out: RepBlock, b_in: RepBlock) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs ``(B, A)`` with ``B W = W A`` for every generator."""
    pairs = list(zip(b_out.lie, b_in.lie)) + list(zip(b_out.discrete, b_in.discrete))
    return [(b, a) for b, a in pairs]


def _dense_basis(
    cons: list[tuple[torch.Tensor, torch.Tensor]], dout: int, din: int
) -> torch.Tensor:
    n = dout * din
    gram = torch.zeros(n, n, dtype=torch.float64)
    i_out, i_in = torch.eye(dout, dtype=torch.float64), torch.eye(din, dtype=torch.float64)
    for b, a in cons:
        k = torch.kron(b, i_in) - torch.kron(i_out, a.T.contiguous())
        gram += k.T @ k
    return _null_space_of_gram(gram)


def _null_space_of_gram(gram: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(gram)
    scale = max(float(evals[-1]), 1.0) if evals.numel() else 1.0
    return evecs[:, evals <= 1e-9 * scale].contiguous()


def _sylvester_basis(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor | None:
    """Real orthonormal basis of ``{W : b W = W a}`` from eigendecompositions, or None."""
    scale = 1.0 + float(b.abs().max()) + float(a.abs().max())
    if (
        float((b + b.T).abs().max()) <= 1e-12 * scale
        and float((a + a.T).abs().max()) <= 1e-12 * scale
    ):
        return _skew_sylvester_basis(b, a, scale)
    lam, u = torch.linalg.eig(b)
    mu, v = torch.linalg.eig(a)
    try:
        v_inv = torch.linalg.inv(v)
        u_inv = torch.linalg.inv(u)
    except RuntimeError:
        return None
    # diagonalisable and well conditioned enough?
    err_b = float((u @ torch.diag(lam) @ u_inv - b).abs().max())
    err_a = float((v @ torch.diag(mu) @ v_inv - a).abs().max())
    if err_b > 1e-9 * scale or err_a > 1e-9 * scale:
        return None
    match = (lam[:, None] - mu[None, :]).abs() <= 1e-8 * scale
    ii, jj = torch.nonzero(match, as_tuple=True)
    if ii.numel() == 0:
        return torch.zeros(b.shape[0] * a.shape[0], 0, dtype=torch.float64)
    mats = u[:, ii].T[:, :, None] * v_inv[jj][:, None, :]  # (count, dout, din) complex
    flat = mats.reshape(ii.numel(), -1)
    real = torch.cat([flat.real, flat.imag], dim=0).T  # (n, 2 count): spans the real solutions
    return _orthonormal_span(real)


def _skew_sylvester_basis(b: torch.Tensor, a: torch.Tensor, scale: float) -> torch.Tensor:
    """Skew-symmetric ``b``, ``a`` (compact groups): an exactly orthonormal real basis.

    ``i b`` and ``i a`` are Hermitian: orthonormal eigenvectors ``u_i``, ``v_j`` with real
    eigenvalues. The solutions are spanned by ``z = u_i conj(v_j)^T`` over matched eigenvalues.
    For ``λ = 0`` the eigenspaces are null spaces of real matrices (real bases); for ``λ > 0``,
    ``sqrt2 Re z`` and ``sqrt2 Im z`` are orthonormal and span ``z`` and its conjugate (the
    ``λ < 0`` solutions), since ``conj(u_i)`` has eigenvalue ``-λ``.
    """
    tol = 1e-8 * scale
    lam, u = torch.linalg.eigh(1j * b.to(torch.complex128))
    mu, v = torch.linalg.eigh(1j * a.to(torch.complex128))
    parts = []
    zero_b, zero_a = _real_null(b, lam, tol), _real_null(a, mu, tol)
    if zero_b.shape[1] and zero_a.shape[1]:
        parts.append(
            torch.einsum("pi,qj->pqij", zero_b, zero_a).reshape(
                -1, zero_b.shape[1] * zero_a.shape[1]
            )
        )
    pos = torch.nonzero(
        ((lam[:, None] - mu[None, :]).abs() <= tol) & (lam[:, None] > tol), as_tuple=True
    )
    if pos[0].numel():
        z = (u[:, pos[0]].T[:, :, None] * v[:, pos[1]].conj().T[:, None, :]).reshape(
            pos[0].numel(), -1
        )
        parts.append(2**0.5 * torch.cat([z.real, z.imag], dim=0).T)
    if not parts:
        return torch.zeros(b.shape[0] * a.shape[0], 0, dtype=torch.float64)
    return torch.cat(parts, dim=1).contiguous()


def _real_null(m: torch.Tensor, eig: torch.Tensor, tol: float) -> torch.Tensor:
    """Real orthonormal basis of ``null(m)`` (``eig``: eigenvalues of ``i m``, to size it)."""
    count = int((eig.abs() <= tol).sum())
    if count == 0:
        return torch.zeros(m.shape[0], 0, dtype=torch.float64)
    _, evecs = torch.linalg.eigh(m.T @ m)
    return evecs[:, :count].contiguous()


def _orthonormal_span(m: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the column span of a tall ``m`` (through its small Gram matrix)."""
    evals, evecs = torch.linalg.eigh(m.T @ m)
    keep = evals > 1e-10 * max(float(evals[-1]), 1e-300)
    basis = (m @ evecs[:, keep]) / evals[keep].sqrt()
    q, _ = torch.linalg.qr(basis)  # polish the orthogonality lost to rounding
    return q.contiguous()


def _structured_basis(
    cons: list[tuple[torch.Tensor, torch.Tensor]], dout: int, din: int
) -> torch.Tensor | None:
    first = _sylvester_basis(*cons[0])
    if first is None:
        return None
    basis = first
    for b, a in cons[1:]:
        if basis.shape[1] == 0:
            break
        w = basis.T.reshape(-1, dout, din)
        resid = (b @ w - w @ a).reshape(w.shape[0], -1)  # (r, n)
        coeffs = _null_space_of_gram(resid @ resid.T)
        basis, _ = torch.linalg.qr(basis @ coeffs)  # re-orthonormalise against rounding
    return basis


def _block_basis(b_out: RepBlock, b_in: RepBlock, fn: str) -> torch.Tensor:
    cons = _constraints(b_out, b_in)
    dout, din = b_out.dim, b_in.dim
    n = dout * din
    if n <= _DENSE_LIMIT:
        return _dense_basis(cons, dout, din)
    basis = _structured_basis(cons, dout, din)
    if basis is not None:
        return basis
    check_memory(
        3 * n * n,
        torch.float64,
        "cpu",
        fn,
        f"the dense constraint of a {dout} x {din} block pair with non-diagonalisable generators",
        hint="split the representations into smaller blocks",
    )
    return _dense_basis(cons, dout, din)


def equivariant_projector(rep_in: Representation, rep_out: Representation) -> EquivariantProjector:
    r"""The orthogonal projector onto weights ``W`` (``rep_out.dim x rep_in.dim``) with
    :math:`ρ_{out}(g) W = W ρ_{in}(g)` for every generator ``g`` of the group.

    Computed block pair by block pair (module docstring); the result is symmetric and idempotent
    (as a map on ``vec(W)``), and its range satisfies the constraint for every group element.

    Args:
        rep_in: representation on the input space (``W``'s columns).
        rep_out: representation on the output space (``W``'s rows), of the same group.

    Returns:
        An :class:`EquivariantProjector`. Applying it is differentiable in the weight.

    Raises:
        TypeError: arguments that are not :class:`Representation` values.
        ValueError: representations of different groups; a block pair too large for memory.

    Example:
        >>> g = axial_rotation_group(2)
        >>> p = equivariant_projector(g.vector(), g.vector())
        >>> p.rank  # [[a, -b, 0], [b, a, 0], [0, 0, c]]
        3
    """
    fn = "equivariant_projector"
    for name, rep in (("rep_in", rep_in), ("rep_out", rep_out)):
        if not isinstance(rep, Representation):
            raise TypeError(f"{fn}: {name} must be a Representation; got {type(rep).__name__}.")
    if not rep_in.group.same_as(rep_out.group):
        raise ValueError(
            f"{fn}: rep_in and rep_out must be representations of one group; got "
            f"{rep_in.group.name} and {rep_out.group.name}."
        )
    cache: dict[tuple[int, int], torch.Tensor] = {}
    by_key: dict[tuple[str, str], list[tuple[RepBlock, RepBlock, torch.Tensor]]] = {}
    pieces = []
    rank = 0
    row = 0
    for b_out, m_out in rep_out.blocks:
        col = 0
        for b_in, m_in in rep_in.blocks:
            ident = (id(b_out), id(b_in))
            if ident not in cache:
                basis = None
                for other_out, other_in, q in by_key.get((b_out.key, b_in.key), []):
                    if _same(other_out, b_out) and _same(other_in, b_in):
                        basis = q
                        break
                if basis is None:
                    basis = _block_basis(b_out, b_in, fn)
                    by_key.setdefault((b_out.key, b_in.key), []).append((b_out, b_in, basis))
                cache[ident] = basis
            q = cache[ident]
            pieces.append(_Piece(row, col, m_out, m_in, b_out.dim, b_in.dim, q))
            rank += m_out * m_in * q.shape[1]
            col += m_in * b_in.dim
        row += m_out * b_out.dim
    return EquivariantProjector(rep_in.dim, rep_out.dim, rank, tuple(pieces))


def _same(x: RepBlock, y: RepBlock) -> bool:
    return x is y or (
        x.lie.shape == y.lie.shape
        and x.discrete.shape == y.discrete.shape
        and bool(torch.equal(x.lie, y.lie))
        and bool(torch.equal(x.discrete, y.discrete))
    )
