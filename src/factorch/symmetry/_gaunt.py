r"""Gaunt tensor products: multiply spherical functions instead of coupling irreps.

For coefficient vectors :math:`x = (x_{lm})_{l \le L_1}`, :math:`y = (y_{lm})_{l \le L_2}` of the
functions :math:`f = \sum x_{lm} Y_{lm}`, :math:`g = \sum y_{lm} Y_{lm}` on the sphere (orthonormal
real harmonics of :func:`spherical_harmonics`), the Gaunt tensor product is the coefficient vector
of the product :math:`fg`,

.. math::

    z_{l_3 m_3} = \int_{S^2} f\, g\, Y_{l_3 m_3}\, dΩ
    = \sum G^{l_1 l_2 l_3}_{m_1 m_2 m_3} x_{l_1 m_1} y_{l_2 m_2},\qquad
    G^{l_1 l_2 l_3} = \int Y_{l_1} Y_{l_2} Y_{l_3} dΩ = g(l_1, l_2, l_3)\, C^{l_1 l_2 l_3},

the CG product with the fixed path weights :math:`g(l_1,l_2,l_3) = \pm
\sqrt{(2l_1+1)(2l_2+1)/(4π(2l_3+1))}\, \langle l_1 0\, l_2 0 | l_3 0\rangle` (Wigner--Eckart; the
sign follows the real basis, see :func:`gaunt_path_weight`), which vanish when
:math:`l_1 + l_2 + l_3` is odd: the Gaunt product has no parity-odd paths (for two vectors it has
no cross product) and ties the remaining paths to fixed ratios (Luo et al., 2024; Xie et al., 2025).

Two O(L³) algorithms compute it exactly (to rounding; the direct CG sum costs O(L⁶)):

* ``method="fourier"`` (Luo et al.): change basis to the 2-D Fourier basis
  :math:`e^{isθ} e^{ivφ}` (each :math:`Y_{lm}` has at most ``2(l+1)`` coefficients, applied per
  ``m`` as a batched matrix product), multiply the two series by 2-D convolution with FFTs, and
  project back with closed-form integrals.
* ``method="grid"`` (Xie et al.'s simplification): evaluate both functions on a product grid
  (Gauss--Legendre in :math:`\cos θ` × uniform in :math:`φ`, exact for the degree
  :math:`L_1 + L_2 + L_{out}`), multiply pointwise and integrate back.

Both are rotation equivariant; under inversion, signals whose degree-``l`` parts have parity
``a_i b_i^l`` give an output with parity ``a_1 a_2 (b_1 b_2)^l`` (spherical-harmonic parities in,
spherical-harmonic parities out).

References:
    S. Luo, T. Chen, A. S. Krishnapriyan, Enabling efficient equivariant operations in the Fourier
    basis via Gaunt tensor products, ICLR 2024.
    Y. Xie, A. Daigavane, M. Kotak, T. Smidt, The price of freedom: exploring expressivity and
    runtime tradeoffs in equivariant tensor products, ICML 2025.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .._numerics import no_autocast
from ._common import check_choice, check_lmax, check_real_tensor, rescale_product, scale_input
from ._sphere import (
    fourier_input_index,
    fourier_to_sh_table,
    grid_tables,
    sh_index,
    sh_to_fourier_table,
)
from ._wigner import _complex_cg

__all__ = ["GauntMethod", "GauntTensorProduct", "gaunt_path_weight", "gaunt_tensor_product"]

GauntMethod = Literal["fourier", "grid"]
_METHODS = ("fourier", "grid")


def gaunt_path_weight(l1: int, l2: int, l3: int) -> float:
    r"""The factor :math:`g` with :math:`\int Y_{l_1} Y_{l_2} Y_{l_3} dΩ = g\, C^{l_1 l_2 l_3}`.

    :math:`g = (-1)^{(l_1+l_2-l_3)/2} \sqrt{\tfrac{(2l_1+1)(2l_2+1)}{4π(2l_3+1)}}
    \langle l_1 0\, l_2 0 | l_3 0 \rangle` for even :math:`l_1+l_2+l_3` (the sign is the phase
    :math:`i^{l_1+l_2-l_3}` of the real basis of :func:`clebsch_gordan`), ``0`` for odd sums and
    outside the triangle. Exact up to one rounding (Racah's formula).

    Args:
        l1: degree of the first harmonic.
        l2: degree of the second harmonic.
        l3: degree of the third harmonic.

    Returns:
        The factor ``g`` as a Python float.

    Raises:
        TypeError: a degree that is not an int.
        ValueError: a negative degree, or one above the supported maximum.

    Example:
        >>> round(gaunt_path_weight(0, 0, 0) * (4 * math.pi) ** 0.5, 12)
        1.0
        >>> gaunt_path_weight(1, 1, 1)
        0.0
    """
    fn = "gaunt_path_weight"
    l1, l2, l3 = (check_lmax(v, fn, n) for v, n in ((l1, "l1"), (l2, "l2"), (l3, "l3")))
    if (l1 + l2 + l3) % 2 or not abs(l1 - l2) <= l3 <= l1 + l2:
        return 0.0
    sign = -1.0 if ((l1 + l2 - l3) // 2) % 2 else 1.0
    scale = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) / (4 * math.pi * (2 * l3 + 1)))
    return sign * scale * _complex_cg(l1, 0, l2, 0, l3, 0)


def _degree_of(dim: int, fn: str, name: str) -> int:
    lmax = math.isqrt(dim) - 1
    if (lmax + 1) ** 2 != dim:
        raise ValueError(
            f"{fn}: the last dimension of {name} must be (lmax + 1)**2 (all degrees 0..lmax, "
            f"e.g. 1, 4, 9, 16); got {dim}."
        )
    return lmax


@no_autocast
def gaunt_tensor_product(
    x1: torch.Tensor,
    x2: torch.Tensor,
    *,
    lmax_out: int | None = None,
    method: GauntMethod = "fourier",
) -> torch.Tensor:
    r"""The Gaunt tensor product of two spherical signals (coefficients of the pointwise product).

    :math:`z_{l_3 m_3} = \int f g Y_{l_3 m_3} dΩ` (module docstring): the CG product restricted
    to the paths with even :math:`l_1 + l_2 + l_3`, with the path weights of
    :func:`gaunt_path_weight`. O(L³) per product instead of the CG product's O(L⁶).

    Args:
        x1: ``(..., (L1 + 1)**2)`` coefficients of degrees ``0..L1`` (layout of
            ``Irreps.spherical_harmonics(L1)``); leading dimensions broadcast with ``x2``'s.
        x2: ``(..., (L2 + 1)**2)``.
        lmax_out: largest output degree (default ``L1 + L2``; degrees above ``L1 + L2`` are zero).
        method: "fourier" (2-D Fourier basis and FFT convolution) or "grid" (S² grid).

    Returns:
        ``(..., (lmax_out + 1)**2)`` in the inputs' dtype and device (half precision computed
        in float32); differentiable.

    Raises:
        TypeError: non-tensor or non-floating inputs, different dtypes.
        ValueError: a last dimension that is not a square, non-broadcasting shapes, non-finite
            entries, a bad ``lmax_out`` or ``method``.

    Example:
        >>> x = torch.zeros(1, 4); x[0, 0] = (4 * math.pi) ** 0.5  # the constant function 1
        >>> y = torch.randn(1, 9)
        >>> torch.allclose(gaunt_tensor_product(x, y, lmax_out=2), y, atol=1e-6)
        True
    """
    fn = "gaunt_tensor_product"
    x1 = check_real_tensor(x1, fn, "x1", finite=False)  # checked when scaled
    x2 = check_real_tensor(x2, fn, "x2", finite=False)
    method = check_choice(method, _METHODS, fn, "method")  # type: ignore[assignment]
    if x1.dtype != x2.dtype:
        raise TypeError(f"{fn}: x1 and x2 must have one dtype; got {x1.dtype} and {x2.dtype}.")
    l1 = _degree_of(x1.shape[-1], fn, "x1")
    l2 = _degree_of(x2.shape[-1], fn, "x2")
    lo = l1 + l2 if lmax_out is None else check_lmax(lmax_out, fn, "lmax_out")
    try:
        lead = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"{fn}: the leading shapes of x1 {tuple(x1.shape[:-1])} and x2 "
            f"{tuple(x2.shape[:-1])} must broadcast."
        ) from err
    # bilinear: exact power-of-two scaling of each input keeps products in range
    a, s1 = scale_input(x1, fn, "x1")
    b, s2 = scale_input(x2, fn, "x2")
    a = a.expand(*lead, x1.shape[-1]).reshape(-1, x1.shape[-1])
    b = b.expand(*lead, x2.shape[-1]).reshape(-1, x2.shape[-1])
    if method == "fourier":
        out = _gaunt_fourier(a, b, l1, l2, lo)
    else:
        out = _gaunt_grid(a, b, l1, l2, lo)
    return rescale_product(out.reshape(*lead, (lo + 1) ** 2), s1 * s2, x1.dtype, fn)


def _by_m(x: torch.Tensor, lmax: int) -> torch.Tensor:
    """``(R, (L+1)^2) -> (R, 2L+1, L+1)``: entry ``[r, m + L, l]`` (zero for ``l < |m|``)."""
    idx, _ = sh_index(lmax)
    padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
    return padded[:, idx.to(x.device)]


def _from_m(z: torch.Tensor, lmax: int) -> torch.Tensor:
    """Inverse of :func:`_by_m`: ``(R, 2L+1, L+1) -> (R, (L+1)^2)``."""
    idx, mask = sh_index(lmax)
    flat = z.reshape(z.shape[0], -1)
    positions = torch.nonzero(mask.reshape(-1)).squeeze(1)
    order = torch.argsort(idx.reshape(-1)[positions])
    return flat[:, positions[order].to(z.device)]


def _fft_size(lmax_prod: int) -> int:
    """Smallest 2-3-5-smooth length ``>= 2 lmax_prod + 1`` (no aliasing of the product)."""
    n = 2 * lmax_prod + 1
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _by_v(x: torch.Tensor, lmax: int) -> torch.Tensor:
    """``(R, (L+1)^2) -> (R, L+1, 2(L+1))``: row ``v`` is ``[x_{l, v} | x_{l, -v}]`` over ``l``."""
    idx = fourier_input_index(lmax).to(x.device)
    padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
    return padded[:, idx]


def _gaunt_fourier(x1: torch.Tensor, x2: torch.Tensor, l1: int, l2: int, lo: int) -> torch.Tensor:
    lp = l1 + l2
    n = _fft_size(lp)
    dt, dev = x1.dtype, x1.device

    def values(x: torch.Tensor, lmax: int) -> torch.Tensor:
        # SH -> 2-D Fourier coefficients: one real batched product with the sparse table gives
        # the v >= 0 half, [r, v, s], s in FFT order (the v < 0 half is its conjugate)
        table = sh_to_fourier_table(lmax, n).to(dtype=dt, device=dev)
        half = torch.view_as_complex(
            torch.einsum("rvk,vks->rvs", _by_v(x, lmax), table).reshape(x.shape[0], lmax + 1, n, 2)
        )
        # values on the n x n torus grid: inverse transforms along θ (s) and φ (v)
        # (transforms run along the last, contiguous dimension; the transposed arrays are small)
        along_theta = torch.fft.ifft(half, dim=2, norm="forward").transpose(1, 2).contiguous()
        return torch.fft.irfft(along_theta, n=n, dim=2, norm="forward")  # [r, θ, φ]

    prod = values(x1, l1) * values(x2, l2)
    # back to 2-D Fourier coefficients: only v = 0 .. lo are needed
    coef = torch.fft.rfft(prod, dim=2, norm="forward")[:, :, : min(lo, lp) + 1]
    coef = torch.fft.fft(coef.transpose(1, 2).contiguous(), dim=2, norm="forward")  # [r, v, u]
    # project onto Y_{lm}: closed-form θ-integrals (the φ-integral selected v = |m|)
    table = fourier_to_sh_table(lo, lp, n).to(dtype=coef.dtype, device=dev)
    z = torch.einsum("rvu,vlu->rvl", coef, table[: coef.shape[1]])  # [r, |m|, l]
    zero = z.new_zeros(z.shape[0], lo + 1 - z.shape[1], lo + 1).real
    cos_part = torch.cat([z.real, zero], dim=1)  # m = 0 .. lo
    sin_part = torch.cat([-z.imag[:, 1:], zero], dim=1).flip(1)  # m = -lo .. -1
    return _from_m(torch.cat([sin_part, cos_part], dim=1), lo)


def _to_grid(x: torch.Tensor, lmax: int, legendre: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """``(R, (L+1)^2) -> (R, n_theta, n_phi)`` values on the product grid."""
    xm = _by_m(x, lmax)  # (R, m, l)
    g = torch.einsum("rml,mli->rim", xm, legendre)  # (R, θ, m)
    return g @ phi


def _gaunt_grid(x1: torch.Tensor, x2: torch.Tensor, l1: int, l2: int, lo: int) -> torch.Tensor:
    degree = l1 + l2 + lo
    lmax = max(l1, l2, lo)
    t = grid_tables(lmax, degree)
    dt, dev = x1.dtype, x1.device
    leg = t.legendre.to(dtype=dt, device=dev)
    ph = t.phi.to(dtype=dt, device=dev)

    def sub(l: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(lmax - l, lmax + l + 1)
        return leg[rows, : l + 1], ph[rows]

    leg1, ph1 = sub(l1)
    leg2, ph2 = sub(l2)
    lego, pho = sub(lo)
    values = _to_grid(x1, l1, leg1, ph1) * _to_grid(x2, l2, leg2, ph2)  # (R, θ, φ)
    n_phi = ph.shape[1]
    k = values @ (pho.T * (2 * math.pi / n_phi))  # (R, θ, m)
    w = t.weights.to(dtype=dt, device=dev)
    z = torch.einsum("rim,mli,i->rml", k, lego, w)
    return _from_m(z, lo)


class GauntTensorProduct(torch.nn.Module):
    r"""Gaunt tensor product with learnable per-degree (and per-channel) weights.

    :math:`z = w^{out} \odot \mathrm{Gaunt}(w^{(1)} \odot x, w^{(2)} \odot y)` where each weight
    multiplies a whole degree (the freedom the Gaunt product keeps, Luo et al. 2024).

    Args:
        lmax1, lmax2: input degrees.
        lmax_out: output degree (default ``lmax1 + lmax2``).
        channels: ``None`` for weights per degree, or a channel count for weights per degree and
            channel (inputs ``(..., channels, (L+1)**2)``).
        method: "fourier" or "grid".
        dtype, device: of the weights (initialised to one).

    Raises:
        TypeError: a degree that is not an int.
        ValueError: a negative degree or one above 64, ``method`` not ``"fourier"`` or
            ``"grid"``, or ``channels`` not a positive int or None.

    Example:
        >>> tp = GauntTensorProduct(2, 2, lmax_out=2, channels=8, method="grid")
        >>> tp(torch.randn(5, 8, 9), torch.randn(5, 8, 9)).shape
        torch.Size([5, 8, 9])
    """

    _rep1: torch.Tensor
    _rep2: torch.Tensor
    _rep_out: torch.Tensor

    def __init__(
        self,
        lmax1: int,
        lmax2: int,
        lmax_out: int | None = None,
        *,
        channels: int | None = None,
        method: GauntMethod = "fourier",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        fn = "GauntTensorProduct"
        self.lmax1 = check_lmax(lmax1, fn, "lmax1")
        self.lmax2 = check_lmax(lmax2, fn, "lmax2")
        self.lmax_out = (
            self.lmax1 + self.lmax2 if lmax_out is None else check_lmax(lmax_out, fn, "lmax_out")
        )
        self.method: GauntMethod = check_choice(method, _METHODS, fn, "method")  # type: ignore[assignment]
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"{fn}: channels must be a positive int or None; got {channels!r}.")
        c = () if channels is None else (channels,)
        kw = {"dtype": dtype, "device": device}
        self.weight1 = torch.nn.Parameter(torch.ones(*c, self.lmax1 + 1, **kw))  # type: ignore[arg-type]
        self.weight2 = torch.nn.Parameter(torch.ones(*c, self.lmax2 + 1, **kw))  # type: ignore[arg-type]
        self.weight_out = torch.nn.Parameter(torch.ones(*c, self.lmax_out + 1, **kw))  # type: ignore[arg-type]
        for name, l in (("_rep1", self.lmax1), ("_rep2", self.lmax2), ("_rep_out", self.lmax_out)):
            self.register_buffer(
                name,
                torch.repeat_interleave(torch.arange(l + 1), torch.arange(l + 1) * 2 + 1),
                persistent=False,
            )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        w1 = self.weight1[..., self._rep1]
        w2 = self.weight2[..., self._rep2]
        z = gaunt_tensor_product(x1 * w1, x2 * w2, lmax_out=self.lmax_out, method=self.method)
        return z * self.weight_out[..., self._rep_out]

    def extra_repr(self) -> str:
        return f"lmax=({self.lmax1}, {self.lmax2}) -> {self.lmax_out}, method={self.method!r}"
