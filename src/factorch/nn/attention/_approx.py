r"""Fast approximate tensor attention: polynomial exponential + the Khatri--Rao identity.

Alman & Song (ICLR 2024) show that tensor attention (:func:`tensor_attention`) can be
approximated in ``n^{1+o(1)}`` time when the entries of ``Q, K1, K2`` are bounded by
``o((log n)^{1/3})``, and that no algorithm beats ``n^{3-o(1)}`` (under SETH) once they reach
``Ω((log n)^{1/3})``. The algorithm implemented here:

1. replace ``exp(s)`` on the pair logits by its degree-``g`` Taylor polynomial ``p_g``, which
   factorizes as ``p_g(<q, k1 ∘ k2>) = <φ(q), ψ(k1) ∘ ψ(k2)>`` (``r`` monomial features, see
   below), so the ``L x S²`` weight matrix is ``U1 (U2 ⊘ U3)ᵀ`` with ``U1 = φ(Q)``,
   ``U2 = ψ(K1)``, ``U3 = ψ(K2)``;
2. use the Khatri--Rao identity ``(U2 ⊘ U3)ᵀ (V1 ⊘ V2) = (U2ᵀ V1) ∘ (U3ᵀ V2)``, so

   .. math:: \widehat{\mathrm{Att}} = \mathrm{diag}(\hat D)^{-1}\, U_1 \big[(U_2^\top V_1) \circ
      (U_3^\top V_2)\big], \qquad \hat D = U_1 \big[(U_2^\top \mathbf 1) \circ (U_3^\top
      \mathbf 1)\big],

   at cost ``O(n r dv)`` -- linear in ``n``. The causal mask for pairs (``j, k <= i``) is a
   product of two prefixes, so it becomes two running prefix sums; key padding zeroes rows.

**Error bound** (exact arithmetic; stated and checked at run time). With ``c`` the scale,
``M1_l = max_j |K1_jl|`` and ``M2_l = max_k |K2_kl|`` over the visible keys, every pair logit of
query ``i`` obeys ``|s_ijk| <= R_i = |c| Σ_l |Q_il| M1_l M2_l <= |c| d B³`` (``B`` the largest
entry). Every weight then has relative error at most ``δ = δ_g(R)`` (the exact Taylor bound of
:func:`~factorch.nn.attention._features.taylor_relative_error`); if ``δ < 1`` all weights stay
positive and, because an attention output is a convex combination of pair values,

.. math:: |\widehat{\mathrm{Att}}_{ic} - \mathrm{Att}_{ic}| \le \frac{\delta}{1 - \delta}\,
   \big(\max_{jk} (V_1 \oslash V_2)_{jk,c} - \min_{jk} (V_1 \oslash V_2)_{jk,c}\big)
   \le \frac{2\delta}{1-\delta} \max_j |V_{1,jc}| \max_k |V_{2,kc}|,

plus floating-point rounding, bounded by ``2 K u e^{2R} max|V1| max|V2| / (1 - δ)`` (``u`` the
unit roundoff, ``K = S + r + g + 2`` the longest sum; a worst case, typically far smaller).

**Regime (the honest constants).** The degree is the smallest ``g <= max_degree`` with
``δ_g(R) / (1 - δ_g(R)) <= eps``, and the features number ``r = C(d + g, g)`` (symmetric
monomials; ``Σ_j d^j`` for full ones). The fast path is used only when such a degree exists
**and** it costs fewer flops than the exact path: ``(L + 2S) r (g + 1) + 6 n r (dv + 1) <
2 L S² (d + dv)`` (a third of the right side with the causal mask), ``n = max(L, S)``. Both
conditions fail together once ``B`` grows past about ``(log n)^{1/3}``
(the needed degree makes ``r = n^{Ω(1)}``) -- the paper's threshold, made concrete. With
``d = 64``, ``r`` is 2,145 / 47,905 / 814,385 at degree 2 / 3 / 4, so the fast path pays off
only for long sequences with small logits (``R`` well below 1); with ``d = 8``, ``r`` is 45 /
165 / 495 / 1,287 / 3,003 at degree 2--6. Outside the regime the function warns
(:class:`TensorAttentionRegimeWarning`) and, by default, returns the exact attention.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Literal, get_args

import torch

from ..._checks import check_positive_int
from ..._numerics import autocast_disabled, check_memory, device_memory
from ._exact import OVERFLOW, tensor_attention
from ._features import FeatureKind, feature_dimension, monomial_features, taylor_relative_error
from ._inputs import (
    check_bool,
    check_qkv,
    check_scale,
    compute_dtypes,
    finish,
    pair_logit_bound,
    token_bias,
    widen_for_logits,
)

__all__ = [
    "ApproximationPlan",
    "TensorAttentionRegimeWarning",
    "tensor_attention_approx",
    "tensor_attention_plan",
]

Fallback = Literal["exact", "approximate", "raise"]
# Elements of one chunk of causal prefix states (``batch x chunk x r x (dv + 1)``).
CHUNK_ELEMENTS = 1 << 21


class TensorAttentionRegimeWarning(UserWarning):
    """The fast tensor attention was asked for outside the regime where its bound holds cheaply."""


@dataclasses.dataclass(frozen=True)
class ApproximationPlan:
    """What :func:`tensor_attention_approx` will do for given inputs, and its guarantee.

    Attributes:
        degree: Taylor degree ``g`` (chosen, or as given).
        features: ``"symmetric"`` or ``"full"`` monomials.
        feature_dim: number of features ``r``.
        entry_bound: ``B``, the largest ``|entry|`` of ``q, k1, k2`` (visible keys).
        logit_bound: ``R``, a proven bound on every visible pair logit ``|s_ijk|``.
        weight_error: ``δ_g(R)``, the largest relative error of one approximate weight.
        output_error_bound: bound on ``max |approx - exact|`` over all outputs (truncation plus
            rounding); ``inf`` when ``δ >= 1`` (no guarantee).
        rounding_bound: the rounding part of ``output_error_bound``.
        eps: the requested accuracy, relative to the value range (see the module docstring).
        exact_flops: flops of the exact blockwise path.
        approx_flops: flops of the fast path.
        paper_threshold: ``(log n)^{1/3}`` with ``n = max(L, S)``: the paper's entry bound.
        in_regime: whether the fast path is used (accuracy met and cheaper than exact).
        reason: why not, when not in the regime ("" otherwise).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> q, k1, k2, v1, v2 = (0.3 * torch.rand(64, 4, generator=g) for _ in range(5))
        >>> plan = tensor_attention_plan(q, k1, k2, v1, v2, eps=1e-4)
        >>> plan.in_regime, plan.degree, plan.feature_dim, plan.reason
        (True, 2, 15, '')
    """

    degree: int
    features: FeatureKind
    feature_dim: int
    entry_bound: float
    logit_bound: float
    weight_error: float
    output_error_bound: float
    rounding_bound: float
    eps: float
    exact_flops: int
    approx_flops: int
    paper_threshold: float
    in_regime: bool
    reason: str


def _check_options(
    fn: str, eps: object, degree: object, max_degree: object, features: object
) -> tuple[float, int | None, int, FeatureKind]:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{fn}: eps must be a float in (0, 1); got {type(eps).__name__}.")
    if not 0.0 < float(eps) < 1.0:
        raise ValueError(f"{fn}: eps must be a float in (0, 1); got {eps}.")
    deg = None if degree is None else check_positive_int(degree, fn, "degree")
    top = check_positive_int(max_degree, fn, "max_degree")
    if features not in get_args(FeatureKind):
        raise ValueError(
            f"{fn}: features must be one of {get_args(FeatureKind)}; got {features!r}."
        )
    kind: FeatureKind = "full" if features == "full" else "symmetric"
    return float(eps), deg, top, kind


def _visible_max(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """``max_j |x_jl|`` over the visible keys, per batch entry: ``(..., width)``."""
    a = x.abs()
    if keep is not None:
        a = a * keep.unsqueeze(-1)
    return a.amax(-2)


def _plan(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    keep: torch.Tensor | None,
    *,
    c: float,
    eps: float,
    degree: int | None,
    max_degree: int,
    kind: FeatureKind,
    causal: bool,
) -> ApproximationPlan:
    nb = math.prod(q.shape[:-2])
    n_query, n_key, d, dv = q.shape[-2], k1.shape[-2], q.shape[-1], v1.shape[-1]
    with torch.no_grad():
        m1, m2 = _visible_max(k1, keep), _visible_max(k2, keep)
        r_i = abs(c) * (q.abs() * (m1 * m2).unsqueeze(-2)).sum(-1)
        logit = float(r_i.max())
        entry = max(float(q.abs().max()), float(m1.max()), float(m2.max()))
        v_range = float((2 * _visible_max(v1, keep) * _visible_max(v2, keep)).max())
    candidates = [degree] if degree is not None else list(range(1, max_degree + 1))
    g, delta = candidates[-1], math.inf
    for g in candidates:
        delta = taylor_relative_error(logit, g)
        if delta < 1 and delta / (1 - delta) <= eps:
            break
    r = feature_dimension(d, g, kind)
    exact_flops = 2 * nb * n_query * n_key * n_key * (d + dv) // (3 if causal else 1)
    approx_flops = nb * (
        (n_query + 2 * n_key) * r * (g + 1) + 6 * max(n_query, n_key) * r * (dv + 1)
    )
    unit = torch.finfo(q.dtype).eps / 2
    if delta < 1:
        trunc = delta / (1 - delta) * v_range
        rounding = 2 * (n_key + r + g + 2) * unit * math.exp(min(2 * logit, 700.0)) * v_range
        rounding /= 1 - delta
        bound = trunc + rounding
    else:
        bound, rounding = math.inf, math.inf
    reason = ""
    if not (delta < 1 and delta / (1 - delta) <= eps):
        reason = (
            f"no degree <= {g} reaches eps={eps:g}: the logit bound R={logit:.3g} (largest "
            f"entry B={entry:.3g}) gives a weight error δ={delta:.3g} at degree {g}"
        )
    elif approx_flops >= exact_flops:
        reason = (
            f"degree {g} needs r={r} features, which costs {approx_flops:.3g} flops against "
            f"{exact_flops:.3g} for the exact path"
        )
    elif nb * (n_query + 2 * n_key) * r * q.element_size() * 4 > device_memory(q.device):
        reason = f"degree {g} needs r={r} features, more than the device memory holds"
    return ApproximationPlan(
        degree=g,
        features=kind,
        feature_dim=r,
        entry_bound=entry,
        logit_bound=logit,
        weight_error=delta,
        output_error_bound=bound,
        rounding_bound=rounding,
        eps=eps,
        exact_flops=exact_flops,
        approx_flops=approx_flops,
        paper_threshold=math.log(max(n_query, n_key, 2)) ** (1 / 3),
        in_regime=not reason,
        reason=reason,
    )


def _keep_mask(
    fn: str, q: torch.Tensor, n_key: int, key_padding_mask: object
) -> torch.Tensor | None:
    bias = token_bias(
        fn,
        batch=q.shape[:-2],
        n_query=1,
        n_key=n_key,
        attn_mask=None,
        key_padding_mask=key_padding_mask,
        is_causal=False,
        device=q.device,
        dtype=q.dtype,
    )
    return None if bias is None else (~torch.isneginf(bias[..., 0, :])).to(q.dtype)


def _approx_forward(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    keep: torch.Tensor | None,
    *,
    c: float,
    degree: int,
    kind: FeatureKind,
    causal: bool,
) -> torch.Tensor:
    phi = monomial_features(q * c, degree, kind=kind, coefficients=True)  # (..., L, r)
    psi1 = monomial_features(k1, degree, kind=kind, coefficients=False)  # (..., S, r)
    psi2 = monomial_features(k2, degree, kind=kind, coefficients=False)
    ones = torch.ones_like(v1[..., :1])
    v1e, v2e = torch.cat([v1, ones], -1), torch.cat([v2, ones], -1)  # last column: denominator
    if keep is not None:
        v1e, v2e = v1e * keep.unsqueeze(-1), v2e * keep.unsqueeze(-1)
    if not causal:
        num = phi @ ((psi1.mT @ v1e) * (psi2.mT @ v2e))
    else:
        num = _causal_numerator(phi, psi1, psi2, v1e, v2e)
    den = num[..., -1:]
    ok = den > 0
    return torch.where(ok, num[..., :-1] / torch.where(ok, den, torch.ones_like(den)), 0.0)


def _causal_numerator(
    phi: torch.Tensor,
    psi1: torch.Tensor,
    psi2: torch.Tensor,
    v1e: torch.Tensor,
    v2e: torch.Tensor,
) -> torch.Tensor:
    """``Σ_m φ_im (Σ_{j<=i} ψ1_jm v1_j) ∘ (Σ_{k<=i} ψ2_km v2_k)``, in chunks of query rows."""
    n_query, n_key = phi.shape[-2], psi1.shape[-2]
    r, width = phi.shape[-1], v1e.shape[-1]
    nb = math.prod(phi.shape[:-2])
    chunk = max(1, CHUNK_ELEMENTS // max(1, nb * r * width))
    state1 = phi.new_zeros((*phi.shape[:-2], r, width))
    state2 = phi.new_zeros((*phi.shape[:-2], r, width))
    parts = []
    for c0 in range(0, n_query, chunk):
        c1 = min(c0 + chunk, n_query)
        end = min(c1, n_key)
        if c0 < end:
            pre1 = state1.unsqueeze(-3) + (
                psi1[..., c0:end, :, None] * v1e[..., c0:end, None, :]
            ).cumsum(-3)
            pre2 = state2.unsqueeze(-3) + (
                psi2[..., c0:end, :, None] * v2e[..., c0:end, None, :]
            ).cumsum(-3)
            state1, state2 = pre1[..., -1, :, :], pre2[..., -1, :, :]
            if end < c1:  # queries past the last key see every key
                extra = (*state1.shape[:-2], c1 - end, r, width)
                pre1 = torch.cat([pre1, state1.unsqueeze(-3).expand(extra)], -3)
                pre2 = torch.cat([pre2, state2.unsqueeze(-3).expand(extra)], -3)
        else:
            shape = (*state1.shape[:-2], c1 - c0, r, width)
            pre1, pre2 = state1.unsqueeze(-3).expand(shape), state2.unsqueeze(-3).expand(shape)
        parts.append(torch.einsum("...mr,...mrv->...mv", phi[..., c0:c1, :], pre1 * pre2))
    return torch.cat(parts, -2)


def tensor_attention_plan(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    *,
    eps: float = 1e-3,
    degree: int | None = None,
    max_degree: int = 6,
    features: FeatureKind = "symmetric",
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> ApproximationPlan:
    r"""The degree, cost and proven error bound :func:`tensor_attention_approx` would use.

    Costs ``O(n d)``: it measures the entry and logit bounds (see the module docstring for the
    bound, the degree rule and the regime) without computing any attention.

    Args:
        q, k1, k2, v1, v2: as :func:`tensor_attention`.
        eps: accuracy target: every output within ``eps`` times its column's value range
            (``max - min`` of ``v1_j ∘ v2_k`` over pairs) of the exact attention.
        degree: force this Taylor degree instead of choosing it from ``eps``.
        max_degree: largest degree tried when choosing.
        features: ``"symmetric"`` (``C(d+g, g)`` monomials) or ``"full"`` (``Σ_j d^j``).
        key_padding_mask, is_causal, scale: as :func:`tensor_attention`.

    Returns:
        An :class:`ApproximationPlan`.

    Raises:
        TypeError, ValueError: bad inputs or options (messages name the fix).

    Not differentiable (a diagnostic).

    Example:
        >>> import torch
        >>> from factorch.nn.attention import tensor_attention_plan
        >>> g = torch.Generator().manual_seed(0)
        >>> q, k1, k2, v1, v2 = (0.3 * torch.rand(256, 4, generator=g) for _ in range(5))
        >>> plan = tensor_attention_plan(q, k1, k2, v1, v2, eps=1e-4)
        >>> plan.in_regime, plan.degree, plan.feature_dim
        (True, 2, 15)
    """
    fn = "tensor_attention_plan"
    q, k1, k2, v1, v2 = check_qkv(fn, ("q", "k1", "k2", "v1", "v2"), (q, k1, k2, v1, v2))
    tol, deg, top, kind = _check_options(fn, eps, degree, max_degree, features)
    causal = check_bool(fn, "is_causal", is_causal)
    c = check_scale(fn, scale, q.shape[-1])
    keep = _keep_mask(fn, q, k1.shape[-2], key_padding_mask)
    return _plan(
        q, k1, k2, v1, v2, keep, c=c, eps=tol, degree=deg, max_degree=top, kind=kind, causal=causal
    )


def tensor_attention_approx(
    q: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    *,
    eps: float = 1e-3,
    degree: int | None = None,
    max_degree: int = 6,
    features: FeatureKind = "symmetric",
    fallback: Fallback = "exact",
    key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Tensor attention in time linear in the sequence length, with a proven error bound.

    Computes ``diag(D̂)⁻¹ φ(Q)[(ψ(K1)ᵀV1) ∘ (ψ(K2)ᵀV2)]`` (Alman & Song's algorithm: a degree-``g``
    polynomial for ``exp`` and the Khatri--Rao identity; see the module docstring for the bound
    and the regime). The degree is the smallest meeting ``eps`` for the measured logit bound.

    Outside the regime (no degree ``<= max_degree`` meets ``eps``, or the features cost more
    than the exact path) a :class:`TensorAttentionRegimeWarning` is emitted and ``fallback``
    decides: ``"exact"`` computes :func:`tensor_attention`, ``"approximate"`` computes the
    approximation anyway (no guarantee), ``"raise"`` raises ``ValueError`` instead of warning.

    Args:
        q, k1, k2, v1, v2: as :func:`tensor_attention`.
        eps, degree, max_degree, features: as :func:`tensor_attention_plan`.
        fallback: ``"exact"``, ``"approximate"`` or ``"raise"``.
        key_padding_mask, is_causal, scale: as :func:`tensor_attention` (a general
            ``attn_mask`` has no factorized form: use the exact function for it).

    Returns:
        ``(..., L, dv)`` in the input dtype (autocast dtype under autocast; half precision is
        computed in float32). Queries that see no pair get zeros.

    Raises:
        TypeError, ValueError: bad inputs or options; ``ValueError`` outside the regime with
            ``fallback="raise"``.

    Differentiable (autograd through the feature maps; memory ``O(n r dv)`` when training).

    Example:
        >>> import torch
        >>> from factorch.nn.attention import tensor_attention, tensor_attention_approx
        >>> g = torch.Generator().manual_seed(0)
        >>> q, k1, k2, v1, v2 = (torch.rand(2, 128, 4, generator=g) - 0.5 for _ in range(5))
        >>> fast = tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-6, is_causal=True)
        >>> exact = tensor_attention(q, k1, k2, v1, v2, is_causal=True)
        >>> bool((fast - exact).abs().max() < 1e-5)
        True
    """
    fn = "tensor_attention_approx"
    q, k1, k2, v1, v2 = check_qkv(fn, ("q", "k1", "k2", "v1", "v2"), (q, k1, k2, v1, v2))
    tol, deg, top, kind = _check_options(fn, eps, degree, max_degree, features)
    if fallback not in get_args(Fallback):
        raise ValueError(f"{fn}: fallback must be one of {get_args(Fallback)}; got {fallback!r}.")
    causal = check_bool(fn, "is_causal", is_causal)
    c = check_scale(fn, scale, q.shape[-1])
    out_dtype, work = compute_dtypes(q)
    work = widen_for_logits(fn, work, pair_logit_bound(q, k1, k2, c))
    with autocast_disabled():
        qw, k1w, k2w, v1w, v2w = (x.to(work) for x in (q, k1, k2, v1, v2))
        keep = _keep_mask(fn, qw, k1.shape[-2], key_padding_mask)
        plan = _plan(
            qw,
            k1w,
            k2w,
            v1w,
            v2w,
            keep,
            c=c,
            eps=tol,
            degree=deg,
            max_degree=top,
            kind=kind,
            causal=causal,
        )
        if not plan.in_regime:
            msg = (
                f"{fn}: outside the fast regime: {plan.reason} (the paper's threshold for the "
                f"entries is about (log n)^(1/3) = {plan.paper_threshold:.2f})"
            )
            if fallback == "raise":
                raise ValueError(
                    msg + "; scale the inputs down, raise eps, or use tensor_attention."
                )
            action = (
                "computing the exact attention" if fallback == "exact" else "approximating anyway"
            )
            warnings.warn(msg + f"; {action}.", TensorAttentionRegimeWarning, stacklevel=2)
            if fallback == "exact":
                out = tensor_attention(
                    qw,
                    k1w,
                    k2w,
                    v1w,
                    v2w,
                    key_padding_mask=key_padding_mask,
                    is_causal=causal,
                    scale=c,
                )
                return finish(fn, out, out_dtype, OVERFLOW)
        nb = math.prod(q.shape[:-2])
        width = v1.shape[-1] + 1
        check_memory(
            nb * (q.shape[-2] + 2 * k1.shape[-2]) * plan.feature_dim * 2
            + 2 * CHUNK_ELEMENTS
            + nb * plan.feature_dim * width * 4,
            work,
            q.device,
            fn,
            f"the degree-{plan.degree} features (r={plan.feature_dim})",
            hint="lower max_degree or raise eps",
        )
        out = _approx_forward(
            qw, k1w, k2w, v1w, v2w, keep, c=c, degree=plan.degree, kind=kind, causal=causal
        )
    return finish(fn, out, out_dtype, "the approximation's values exceed the range")
