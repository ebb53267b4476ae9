"""The truncated transforms of the kept modes: the DFT-matrix path (short lines) and the
whole-grid matrix path (small 2-D/3-D grids) equal the FFT path, values and gradients, on odd and
even grids with and without the Nyquist frequency."""

from __future__ import annotations

import pytest
import torch

from factorch.nn.spectral import _modes

CASES = [
    ((9,), (5,)),  # odd grid
    ((8,), (8,)),  # even grid, Nyquist kept
    ((7, 8), (5, 4)),
    ((6, 7), (6, 7)),
    ((5, 6, 8), (3, 4, 8)),  # 3-D, Nyquist kept along the last dimension
]


def _both(monkeypatch, fn):
    """``fn()`` through the last dimension's DFT matrix and through the FFTs (the whole-grid
    matrix off in both)."""
    monkeypatch.setattr(_modes, "GRID_MATRIX_MAX", 0)
    monkeypatch.setattr(_modes, "DFT_MATRIX_MAX", 10**9)
    matrix = fn()
    monkeypatch.setattr(_modes, "DFT_MATRIX_MAX", 0)
    return matrix, fn()


def _grid_and_fft(monkeypatch, fn):
    """``fn()`` through the whole-grid matrix and through the FFTs."""
    monkeypatch.setattr(_modes, "GRID_MATRIX_MAX", 10**9)
    matrix = fn()
    monkeypatch.setattr(_modes, "GRID_MATRIX_MAX", 0)
    monkeypatch.setattr(_modes, "DFT_MATRIX_MAX", 0)
    return matrix, fn()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("grid", "modes"), CASES)
def test_dft_matrix_path_equals_fft_path(monkeypatch, grid, modes, dtype) -> None:
    _matrix_path_equals_fft_path(lambda fn: _both(monkeypatch, fn), grid, modes, dtype, seed=0)


def _matrix_path_equals_fft_path(both, grid, modes, dtype, *, seed: int) -> None:
    """``both(fn)`` runs ``fn`` on the matrix path and on the FFT path: the forward and inverse
    transforms agree (an arbitrary spectrum for the inverse: irfft ignores the imaginary parts
    at k = 0 and Nyquist; so must the matrices)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *grid, generator=g, dtype=dtype)
    kept_m, kept_f = both(lambda: _modes.forward_modes(x, modes))
    assert kept_m.dtype == kept_f.dtype and kept_m.shape == kept_f.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(kept_m, kept_f, rtol=tol, atol=tol * float(x.abs().max()) * 10)
    spec = torch.randn(kept_f.shape, generator=g, dtype=kept_f.dtype)
    y_m, y_f = both(lambda: _modes.inverse_modes(spec, modes, grid))
    assert y_m.dtype == dtype and y_m.shape == (2, 3, *grid)
    torch.testing.assert_close(y_m, y_f, rtol=tol, atol=tol)


GRID_CASES = [
    ((7, 8), (5, 4)),
    ((6, 7), (6, 7)),  # odd last dimension, all modes
    ((9, 11), (5, 6)),  # odd grids
    ((8, 8), (8, 8)),  # Nyquist kept along both
    ((5, 6, 8), (3, 4, 8)),  # 3-D, Nyquist kept along the last dimension
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("grid", "modes"), GRID_CASES)
def test_grid_matrix_path_equals_fft_path(monkeypatch, grid, modes, dtype) -> None:
    both = lambda fn: _grid_and_fft(monkeypatch, fn)  # noqa: E731
    _matrix_path_equals_fft_path(both, grid, modes, dtype, seed=2)


def test_grid_matrix_rule() -> None:
    # 2 x kept x grid points <= GRID_MATRIX_MAX, two or three dimensions only
    assert _modes._use_grid_matrix((8, 8), (16, 16))  # Darcy 16^2: 2 * 40 * 256 = 20,480
    assert not _modes._use_grid_matrix((12, 12), (32, 32))  # 2 * 84 * 1024 = 172,032
    assert not _modes._use_grid_matrix((16,), (128,))  # 1-D: the last-dimension matrix


def test_grid_matrix_path_gradients(monkeypatch) -> None:
    monkeypatch.setattr(_modes, "GRID_MATRIX_MAX", 10**9)
    grid, modes = (5, 6), (4, 6)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, *grid, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(_modes.forward_modes(x, modes).shape, generator=g, dtype=torch.complex128)

    def f(t):
        return _modes.inverse_modes(_modes.forward_modes(t, modes) * w, modes, grid)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize(("grid", "modes"), [((8,), (8,)), ((5, 6), (4, 6))])
def test_dft_matrix_path_gradients(monkeypatch, grid, modes) -> None:
    monkeypatch.setattr(_modes, "GRID_MATRIX_MAX", 0)
    monkeypatch.setattr(_modes, "DFT_MATRIX_MAX", 10**9)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, *grid, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(_modes.forward_modes(x, modes).shape, generator=g, dtype=torch.complex128)

    def f(t):
        return _modes.inverse_modes(_modes.forward_modes(t, modes) * w, modes, grid)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8)


# --- dtype conversions of a built model carry the complex weights along -------------------------


@pytest.mark.parametrize(
    "options", [{}, {"format": "tucker", "ratio": 0.5}, {"format": "cp", "ratio": 0.5}]
)
@pytest.mark.parametrize("convert", ["double", "to"])
def test_module_double_and_to_float64_keep_the_complex_weights(
    options: dict[str, object], convert: str
) -> None:
    from factorch.models import FNO

    def build() -> FNO:
        return FNO(
            1, 1, (4, 4), hidden_channels=4, generator=torch.Generator().manual_seed(0), **options
        )  # type: ignore[arg-type]

    ref = build()
    model = build()
    model = model.double() if convert == "double" else model.to(torch.float64)
    # Module.double() used to skip the complex weights (then a dtype error at forward) and
    # Module.to(torch.float64) cast them to real, discarding their imaginary parts.
    dtypes = {p.dtype for p in model.parameters()}
    assert dtypes == {torch.float64, torch.complex128}
    for p64, p32 in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p64, p32.to(p64.dtype))
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = model(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y.float(), ref(x.float()), rtol=1e-5, atol=1e-5)
    back = model.float()
    assert {p.dtype for p in back.parameters()} == {torch.float32, torch.complex64}
    torch.testing.assert_close(back(x.float()), ref(x.float()), rtol=0, atol=0)
