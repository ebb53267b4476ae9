"""Bridges to TensorLy and pyttb: exact round trips in float64, both TensorLy backends, TensorLy's
global backend untouched, lazy imports with a clear error, pinned messages."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from factorch.interop import from_pyttb, from_tensorly, to_pyttb, to_tensorly
from factorch.random import random_cp, random_tr, random_tt, random_tucker
from factorch.tensors import CPTensor, SparseTensor, TRTensor, TTTensor, TuckerTensor

ttb = pytest.importorskip("pyttb")
tl = pytest.importorskip("tensorly")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def models() -> list[object]:
    g = _gen()
    kw = {"generator": g, "dtype": torch.float64}
    return [
        random_cp((3, 4, 5), 2, **kw),
        random_tucker((3, 4, 5), (2, 3, 2), **kw),
        random_tt((3, 4, 5, 2), 2, **kw),
        random_tr((3, 4, 5), 2, **kw),
        torch.randn(3, 4, 5, generator=g, dtype=torch.float64),
    ]


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
        return
    ta, tb = a._tensors(), b._tensors()  # type: ignore[attr-defined]
    assert len(ta) == len(tb) and all(torch.equal(x, y) for x, y in zip(ta, tb))


@pytest.mark.parametrize("backend", ["numpy", "pytorch"])
@pytest.mark.parametrize("index", range(5), ids=["cp", "tucker", "tt", "tr", "dense"])
def test_tensorly_round_trip_is_exact(tensorly_backend, backend, index):
    tensorly_backend("numpy")
    model = models()[index]
    out = to_tensorly(model, backend=backend)
    assert tl.get_backend() == "numpy"  # the global backend is left alone
    back = from_tensorly(out)
    _same(model, back)
    tensorly_backend(backend)  # TensorLy computes with an object under its arrays' backend
    dense = out if index == 4 else out.to_tensor()
    ref = model if isinstance(model, torch.Tensor) else model.to_dense()
    got = torch.as_tensor(np.asarray(dense) if backend == "numpy" else dense)
    torch.testing.assert_close(got, ref, rtol=1e-13, atol=1e-13)


def test_tensorly_types_and_tuples(tensorly_backend):
    tensorly_backend("numpy")
    cp = models()[0]
    tl_cp = to_tensorly(cp, backend="numpy")
    assert isinstance(tl_cp, tl.cp_tensor.CPTensor)
    weights, factors = tl_cp
    _same(from_tensorly((weights, factors)), cp)
    assert torch.equal(from_tensorly((None, factors)).weights, torch.ones(2, dtype=torch.float64))
    tucker = models()[1]
    core, tfactors = to_tensorly(tucker, backend="numpy")
    _same(from_tensorly((core, tfactors)), tucker)
    tt = models()[2]
    _same(from_tensorly(list(to_tensorly(tt, backend="numpy").factors)), tt)
    tr = models()[3]
    _same(from_tensorly(list(to_tensorly(tr, backend="numpy").factors)), tr)
    _same(from_tensorly(list(to_tensorly(tt, backend="numpy").factors), kind="tr"),
          TRTensor(tt.cores))  # fmt: skip


def test_decomposition_by_tensorly_comes_back_exactly(tensorly_backend):
    tensorly_backend("numpy")
    from tensorly.decomposition import parafac

    x = models()[4].numpy()
    weights, factors = parafac(x, 2, n_iter_max=5, init="random", random_state=0)
    cp = from_tensorly((weights, factors))
    for f, ref in zip(cp.factors, factors):
        np.testing.assert_array_equal(f.numpy(), ref)
    np.testing.assert_allclose(cp.to_dense().numpy(), tl.cp_to_tensor((weights, factors)),
                               rtol=1e-13, atol=1e-14)  # fmt: skip


@pytest.mark.parametrize("index", [0, 1, 4], ids=["ktensor", "ttensor", "tensor"])
def test_pyttb_round_trip_is_exact(index):
    model = models()[index]
    out = to_pyttb(model)
    back = from_pyttb(out)
    _same(model, back)
    ref = model if isinstance(model, torch.Tensor) else model.to_dense()
    full = out if index == 4 else out.full()
    np.testing.assert_allclose(full.data, ref.numpy(), rtol=1e-13, atol=1e-13)


def test_pyttb_sptensor_round_trip_is_exact():
    g = _gen(1)
    x = torch.randn(5, 6, 7, generator=g, dtype=torch.float64)
    x[torch.rand(x.shape, generator=g) > 0.2] = 0.0
    sp = SparseTensor.from_dense(x)
    out = to_pyttb(sp)
    assert isinstance(out, ttb.sptensor) and out.nnz == sp.nnz
    np.testing.assert_array_equal(out.full().data, x.numpy())
    back = from_pyttb(out)
    assert isinstance(back, SparseTensor)
    assert torch.equal(back.indices.long(), sp.indices.long())
    assert torch.equal(back.values, sp.values)


def test_numpy_factorch_tensorly_pyttb_chain_is_exact(tensorly_backend):
    tensorly_backend("numpy")
    rng = np.random.default_rng(0)
    weights, factors = rng.random(3), [rng.standard_normal((n, 3)) for n in (4, 5, 6)]
    cp = from_tensorly((weights, factors))
    k = to_pyttb(cp)
    again = from_tensorly(to_tensorly(from_pyttb(k), backend="numpy"))
    np.testing.assert_array_equal(again.weights.numpy(), weights)
    for f, ref in zip(again.factors, factors):
        np.testing.assert_array_equal(f.numpy(), ref)


def test_float32_is_kept_by_tensorly_and_widened_exactly_for_pyttb():
    cp = models()[0].to(dtype=torch.float32)
    assert to_tensorly(cp, backend="numpy").factors[0].dtype == np.float32
    assert from_tensorly(to_tensorly(cp, backend="pytorch")).dtype == torch.float32
    back = from_pyttb(to_pyttb(cp))  # pyttb's ktensor holds float64 only
    assert back.dtype == torch.float64
    assert torch.equal(back.to(dtype=torch.float32).factors[0], cp.factors[0])


def test_missing_optional_dependency_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith(("tensorly", "pyttb")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda name: fake_import(name))
    with pytest.raises(ImportError, match=r"to_tensorly: this bridge needs the optional package "
                       r"'tensorly'.*pip install tensorly"):  # fmt: skip
        to_tensorly(models()[0])
    with pytest.raises(ImportError, match=r"from_pyttb: this bridge needs the optional package "
                       r"'pyttb'"):  # fmt: skip
        from_pyttb(object())


BAD = [
    (to_tensorly, ("x",), {"backend": "numpy"}, TypeError,
     r"to_tensorly: model must be a CPTensor, TuckerTensor, TTTensor, TRTensor or torch.Tensor; "
     r"got str"),
    (to_tensorly, (torch.ones(2),), {"backend": "jax"}, ValueError,
     r"to_tensorly: backend must be one of \('numpy', 'pytorch'\); got 'jax'"),
    (from_tensorly, (3.0,), {}, TypeError, r"from_tensorly: obj must be a TensorLy CPTensor"),
    (from_tensorly, ([np.ones((2, 2))],), {"kind": "cp"}, TypeError,
     r"from_tensorly: a CP must unpack as \(weights, factors\)"),
    (from_tensorly, ((np.ones(2), np.ones((2, 2))),), {"kind": "cp"}, TypeError,
     r"from_tensorly: the factors of a CP must be a list"),
    (from_tensorly, (np.ones(2),), {"kind": "matrix"}, TypeError,
     r"from_tensorly: kind must be one of \('cp', 'tucker', 'tt', 'tr', 'dense'\)"),
    (from_tensorly, (np.array(["a"]),), {}, TypeError, r"from_tensorly: obj must hold numbers"),
    (to_pyttb, (models()[2],), {}, TypeError,
     r"to_pyttb: model must be a CPTensor, TuckerTensor, SparseTensor or floating torch.Tensor; "
     r"got TTTensor"),
    (from_pyttb, (np.ones(3),), {}, TypeError,
     r"from_pyttb: obj must be a pyttb ktensor, ttensor, tensor or sptensor; got ndarray"),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "args", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input_is_refused_with_a_pinned_message(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


def test_invalid_pieces_get_the_factorized_types_own_message():
    with pytest.raises(ValueError, match=r"CPTensor: factors\[1\] has 3 columns"):
        from_tensorly((np.ones(2), [np.ones((4, 2)), np.ones((5, 3))]))
    assert isinstance(from_tensorly((np.ones((2, 2)), [np.ones((4, 2)), np.ones((5, 2))])),
                      CPTensor) is False  # a 2-D head is a Tucker core  # fmt: skip
    assert isinstance(from_tensorly([np.ones((1, 3, 2)), np.ones((2, 4, 1))]), TTTensor)
    assert isinstance(from_tensorly((np.ones((2, 2)), [np.ones((4, 2)), np.ones((5, 2))])),
                      TuckerTensor)  # fmt: skip
