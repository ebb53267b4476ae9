"""Kalman filter and Rauch--Tung--Striebel smoother for stacked Matérn state-space priors.

The ``R`` latent functions of one mode are independent Matérn GPs a priori (each a ``p+1``
dimensional Gauss--Markov state, :mod:`._kernels`), stacked into a state of dimension
``D = R (p+1)``. Observations arrive as Gaussian *pseudo-observations* in natural parameters: at
the ``j``-th sorted coordinate a factor

.. math::

    \\exp\\big(-\\tfrac12 \\mathbf{u}_j^\\top \\Lambda_j \\mathbf{u}_j
    + \\boldsymbol\\eta_j^\\top \\mathbf{u}_j\\big), \\qquad \\mathbf{u}_j = H \\mathbf{x}_j,

with a positive semi-definite ``Lambda_j`` (possibly singular: a rank-one message from one
tensor entry, or zero where nothing is observed). The filter update is written so that
``Lambda_j`` is never inverted: with ``S = H P H^T``,

.. math::

    \\mathbf{m}^+ = \\mathbf{m} + P H^\\top (I + \\Lambda S)^{-1} (\\boldsymbol\\eta - \\Lambda H
    \\mathbf{m}), \\qquad P^+ = P - P H^\\top (I + \\Lambda S)^{-1} \\Lambda H P,

which is the usual Kalman update with observation ``Lambda^{-1} eta`` and noise ``Lambda^{-1}``
when ``Lambda`` is invertible (``I + Lambda S`` always is: the eigenvalues of ``Lambda S`` are
those of ``S^{1/2} Lambda S^{1/2} >= 0``). The RTS pass then gives the posterior marginals at
every coordinate in ``O(n D^3)`` (Särkkä, *Bayesian Filtering and Smoothing*, 2013, sections 4.3
and 8.2). Everything runs in float64: the recursions lose positive-definiteness in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..._checks import as_tensor, check_tensor
from ..._numerics import check_memory, no_autocast
from ._kernels import Matern

__all__ = ["kalman_rts", "merge_coordinates", "scan_affine", "state_space_gp"]


def _stacked(block: torch.Tensor, rank: int) -> torch.Tensor:
    """``(n, m, m)`` blocks -> ``(n, m R, m R)`` matrices ``block (x) I_R``: the state is ordered
    component-major (``index = c R + r``), so the ``R`` function values are its first entries."""
    n, m, _ = block.shape
    eye = torch.eye(rank, dtype=block.dtype, device=block.device)
    return torch.einsum("nab,rs->narbs", block, eye).reshape(n, m * rank, m * rank)


Elements = tuple[torch.Tensor, ...]


def _scan(elems: Elements, op: Callable[[Elements, Elements], Elements]) -> Elements:
    """Inclusive prefix scan ``out[i] = x[0] o x[1] o ... o x[i]`` of an associative ``op``
    (``op(earlier, later)``), batched over the first dimension.

    Work-efficient (Blelloch 1990): neighbouring pairs are combined, the half-length sequence of
    pairs is scanned recursively, and the even positions are completed from it -- about ``2 n``
    combinations in ``2 ceil(log2 n)`` levels of batched operations. Differentiable.
    """
    n = elems[0].shape[0]
    if n == 1:
        return elems
    pairs = op(tuple(e[0 : n - 1 : 2] for e in elems), tuple(e[1:n:2] for e in elems))
    odd = _scan(pairs, op)  # odd[i] = x[0] o ... o x[2i + 1]
    m = (n + 1) // 2  # number of even positions
    rest = op(tuple(o[: m - 1] for o in odd), tuple(e[2:n:2] for e in elems))
    even = tuple(torch.cat([e[:1], r]) for e, r in zip(elems, rest))
    out = []
    for ev, od in zip(even, odd):
        both = torch.stack([ev[: od.shape[0]], od], dim=1).flatten(0, 1)
        out.append(torch.cat([both, ev[od.shape[0] :]]))
    return tuple(out)


def _affine_op(a: Elements, b: Elements) -> Elements:
    """Compose affine maps ``x -> A x + c``: ``a`` first, then ``b``."""
    a_i, c_i = a
    a_j, c_j = b
    return a_j @ a_i, a_j @ c_i + c_j


def scan_affine(trans: torch.Tensor, offsets: torch.Tensor) -> Elements:
    """States of the recursion ``x_j = A_j x_{j-1} + c_j`` (``A_0 = 0``) for all ``j`` at once:
    ``(prefix transitions, states)``; differentiable (an associative scan)."""
    return _scan((trans, offsets), _affine_op)


def _filter_op(a: Elements, b: Elements) -> Elements:
    """Combine filtering elements ``(A, b, C, eta, J)``: ``a`` earlier, ``b`` later
    (Särkkä and García-Fernández 2021, Lemma 8)."""
    a_i, b_i, c_i, eta_i, j_i = a
    a_j, b_j, c_j, eta_j, j_j = b
    d = a_i.shape[-1]
    eye = torch.eye(d, dtype=a_i.dtype, device=a_i.device)
    t = eye + c_i @ j_j
    rhs = torch.cat([a_i, (b_i + (c_i @ eta_j[..., None])[..., 0])[..., None], c_i], dim=-1)
    x = _solve(t, rhs)
    a_new = a_j @ x[..., :d]
    b_new = (a_j @ x[..., d : d + 1])[..., 0] + b_j
    c_new = a_j @ x[..., d + 1 :] @ a_j.mT + c_j
    rhs2 = torch.cat([j_j @ a_i, (eta_j - (j_j @ b_i[..., None])[..., 0])[..., None]], dim=-1)
    y = _solve(t.mT, rhs2)
    eta_new = (a_i.mT @ y[..., d:])[..., 0] + eta_i
    j_new = a_i.mT @ y[..., :d] + j_i
    return a_new, b_new, 0.5 * (c_new + c_new.mT), eta_new, 0.5 * (j_new + j_new.mT)


def _smooth_op(later: Elements, earlier: Elements) -> Elements:
    """Combine smoothing elements ``(E, g, L)`` of a reversed sequence: ``earlier`` holds the
    earlier *coordinates* (Särkkä and García-Fernández 2021, Lemma 10)."""
    e_j, g_j, l_j = later
    e_i, g_i, l_i = earlier
    l_new = e_i @ l_j @ e_i.mT + l_i
    return e_i @ e_j, (e_i @ g_j[..., None])[..., 0] + g_i, 0.5 * (l_new + l_new.mT)


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x, info = torch.linalg.solve_ex(a, b)
    bad = (info != 0) | ~torch.isfinite(x).flatten(-2).all(-1)
    if bool(bad.any()):
        x = torch.where(bad[..., None, None], torch.linalg.lstsq(a, b).solution, x)
    return x


def kalman_rts(
    gaps: torch.Tensor,
    kernel: Matern,
    precision: torch.Tensor,
    information: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior marginals of ``R`` stacked Matérn GPs given pseudo-observations.

    The filter and the RTS smoother are evaluated as associative prefix scans (Särkkä and
    García-Fernández, "Temporal parallelization of Bayesian smoothers", IEEE TAC 66, 2021): every
    step becomes an element, elements combine associatively, and ``2 ceil(log2 n)`` levels of
    batched ``D x D`` operations replace the ``n`` sequential steps (``O(n D^3)`` work,
    ``O(log n)`` depth: fast in eager PyTorch on the CPU and on GPUs). With the natural-parameter
    observations the filtering element of step ``k`` is, with ``F = A_k``, ``Q = Q_k``,
    ``M = I + Lambda H Q H^T``, ``v = M^{-1} eta`` and ``G = M^{-1} Lambda``,

    .. math::

        A = F - Q H^\top G H F, \\quad b = Q H^\top v, \\quad C = Q - Q H^\top G H Q, \\quad
        \boldsymbol\\eta = F^\top H^\top v, \\quad J = F^\top H^\top G H F,

    and the first element is the update of the stationary prior (``A = 0``).

    Args:
        gaps: ``(n,)`` distances between consecutive sorted coordinates (``gaps[0]`` is
            ignored: the chain starts from the stationary prior); non-negative.
        kernel: the prior of every function (with a lengthscale).
        precision: ``(n, R, R)`` PSD natural-parameter matrices ``Lambda_j`` (zeros: no data).
        information: ``(n, R)`` natural-parameter vectors ``eta_j``.

    Returns:
        ``(mean, cov)``: ``(n, R)`` posterior means and ``(n, R, R)`` covariances of the function
        values at the ``n`` coordinates, float64.

    Internal (no argument checks); float64.
    """
    n, rank = information.shape
    dt = torch.float64
    dev = information.device
    d = rank * kernel.order
    check_memory(
        16 * n * d * (d + 2), dt, dev, "funbat", f"the Kalman smoother over {n} coordinates"
    )
    a1, q1 = kernel.transitions(gaps.to(dt))
    f_all = _stacked(a1, rank)
    q_all = _stacked(q1, rank)
    _, p_inf1 = kernel.state_space(dtype=dt, device=dev)
    q_all[0] = _stacked(p_inf1[None], rank)[0]  # the first step starts from the prior
    lam = precision.to(dt)
    eta_obs = information.to(dt)
    eye_r = torch.eye(rank, dtype=dt, device=dev)

    # filtering elements (the first one: A = 0, an update of the prior)
    hq = q_all[:, :rank, :]  # H Q
    m = eye_r + lam @ hq[:, :, :rank]
    sol = _solve(m, torch.cat([eta_obs[..., None], lam], dim=-1))
    v, g = sol[..., 0], sol[..., 1:]
    k_gain = hq.mT @ g  # Q H^T G
    hf = f_all[:, :rank, :]
    a_el = f_all - k_gain @ hf
    a_el[0] = 0.0
    b_el = (hq.mT @ v[..., None])[..., 0]
    c_el = q_all - k_gain @ hq
    eta_el = (hf.mT @ v[..., None])[..., 0]
    j_el = hf.mT @ g @ hf
    eta_el[0] = 0.0
    j_el[0] = 0.0
    filt = _scan((a_el, b_el, 0.5 * (c_el + c_el.mT), eta_el, 0.5 * (j_el + j_el.mT)), _filter_op)
    m_f, p_f = filt[1], filt[2]

    # smoothing elements: E_k = P_k F^T (F P_k F^T + Q)^{-1}, g_k = m_k - E_k F m_k, L_k = ...
    f_next, q_next = f_all[1:], q_all[1:]
    fp = f_next @ p_f[:-1]
    p_pred = fp @ f_next.mT + q_next
    e_el = _solve(0.5 * (p_pred + p_pred.mT), fp).mT
    g_el = m_f[:-1] - (e_el @ (f_next @ m_f[:-1, :, None]))[..., 0]
    l_el = p_f[:-1] - e_el @ fp
    e_all = torch.cat([e_el, torch.zeros_like(e_el[:1]) if n > 1 else p_f[:0]])
    if n == 1:
        e_all = torch.zeros_like(p_f)
    g_all = torch.cat([g_el, m_f[-1:]])
    l_all = torch.cat([l_el, p_f[-1:]])
    rev = _scan((e_all.flip(0), g_all.flip(0), l_all.flip(0)), _smooth_op)
    m_s, p_s = rev[1].flip(0), rev[2].flip(0)
    return m_s[:, :rank], p_s[:, :rank, :rank]


def _solve_psd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a^{-1} b`` for (batches of) symmetric PSD ``a``; the pseudo-inverse where ``a`` is
    singular."""
    x, info = torch.linalg.solve_ex(a, b)
    bad = (info != 0) | ~torch.isfinite(x).flatten(-2).all(-1)
    if bool(bad.any()):
        x = torch.where(bad[..., None, None], torch.linalg.pinv(a, hermitian=True) @ b, x)
    return x


def merge_coordinates(
    known: torch.Tensor, query: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted union of the sorted unique ``known`` coordinates and ``query``.

    Returns:
        ``(union, known_pos, query_pos)``: the sorted unique union, the position of every known
        coordinate in it and the position of every query coordinate in it.
    """
    union, inverse = torch.unique(torch.cat([known, query]), sorted=True, return_inverse=True)
    return union, inverse[: known.numel()], inverse[known.numel() :]


def _gaps(coords: torch.Tensor) -> torch.Tensor:
    gaps = torch.zeros_like(coords)
    gaps[1:] = coords[1:] - coords[:-1]
    return gaps


@no_autocast
def state_space_gp(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel: Matern,
    noise_variance: float,
    at: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-dimensional GP regression in ``O(n)`` with the state-space form of a Matérn kernel.

    Computes the posterior of ``u ~ GP(0, k)`` given ``y_i = u(x_i) + e_i``,
    ``e_i ~ N(0, noise_variance)``, which equals the dense-kernel formulas

    .. math::

        \\mathbb{E}[u(X_*)] = K_{*} (K + \\sigma_n^2 I)^{-1} \\mathbf{y}, \\qquad
        \\mathrm{Var}[u(X_*)] = \\mathrm{diag}\\big(K_{**} - K_{*} (K + \\sigma_n^2 I)^{-1}
        K_{*}^\\top\\big),

    by a Kalman filter and RTS smoother over the sorted distinct coordinates (repeated
    coordinates are merged into one pseudo-observation: their precisions and informations add).

    Args:
        x: ``(n,)`` coordinates, in any order, repeats allowed; finite.
        y: ``(n,)`` observations; finite.
        kernel: the prior (a ``lengthscale=None`` kernel gets one tenth of the range of ``x``).
        noise_variance: ``sigma_n^2 > 0``.
        at: ``(m,)`` coordinates to predict at (default ``x``).

    Returns:
        ``(mean, variance)`` of ``u`` at ``at``, each ``(m,)`` float64.

    Raises:
        TypeError: non-numeric input.
        ValueError: shapes that do not match, NaN or infinite values, a non-positive noise.

    Not differentiable (float64 recursions).

    Example:
        >>> import torch
        >>> x = torch.tensor([0.3, 0.1, 0.2, 0.2])
        >>> mean, var = state_space_gp(x, torch.sin(x), kernel=Matern(1.5, 0.5),
        ...                            noise_variance=1e-2)
        >>> mean.shape, bool((var > 0).all())
        (torch.Size([4]), True)
    """
    fn = "state_space_gp"
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, int | float):
            raise TypeError(f"{fn}: {name} must be a 1-D tensor or array; got a number.")
    x = check_tensor(as_tensor(x, fn, "x"), fn, "x", ndim=1, floating=False, finite=False)
    y = check_tensor(as_tensor(y, fn, "y"), fn, "y", ndim=1)
    if y.is_complex():
        raise TypeError(f"{fn}: y must be real; got {y.dtype}.")
    if x.numel() != y.numel():
        raise ValueError(
            f"{fn}: x and y must have the same length; got {x.numel()} and {y.numel()}."
        )
    if not isinstance(kernel, Matern):
        raise TypeError(f"{fn}: kernel must be a Matern; got {type(kernel).__name__}.")
    noise = float(noise_variance)
    if not noise > 0 or noise == float("inf"):
        raise ValueError(f"{fn}: noise_variance must be a positive finite number; got {noise}.")
    x64 = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x64).all()):
        raise ValueError(f"{fn}: x contains NaN or infinite coordinates; drop those points.")
    query = (
        x64
        if at is None
        else as_tensor(at, fn, "at").detach().to(device=x.device, dtype=torch.float64)
    )
    if query.ndim != 1 or not bool(torch.isfinite(query).all()):
        raise ValueError(f"{fn}: at must be a 1-D tensor of finite coordinates.")
    kernel = kernel.resolved(x64)
    coords, inverse = torch.unique(x64, sorted=True, return_inverse=True)
    union, known_pos, query_pos = merge_coordinates(coords, query)
    n = union.numel()
    lam = torch.zeros(n, 1, 1, dtype=torch.float64, device=x.device)
    eta = torch.zeros(n, 1, dtype=torch.float64, device=x.device)
    pos = known_pos[inverse]
    lam.index_put_(
        (pos, torch.zeros_like(pos), torch.zeros_like(pos)),
        torch.full_like(x64, 1.0 / noise),
        accumulate=True,
    )
    eta.index_put_(
        (pos, torch.zeros_like(pos)), y.detach().to(torch.float64) / noise, accumulate=True
    )
    mean, cov = kalman_rts(_gaps(union), kernel, lam, eta)
    return mean[query_pos, 0], cov[query_pos, 0, 0].clamp_min(0.0)
