"""``FactorizedEmbedding``: a factorized embedding table, looked up without rebuilding it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..algebra.internal import khatri_rao as _khatri_rao
from ..algebra.internal import mode_dot as _mode_dot
from ._layer import FactorizedLayer, check_format, make_weight, resolve_rank
from ._linear import MEMORY_WEIGHT, linear_layout
from ._spec import TensorizedShape, _positive_ints, resolve_shape
from ._weight import FactorizedWeight, FormatName

__all__ = ["FactorizedEmbedding", "embedding_flops"]


def _digits(idx: torch.Tensor, factors: tuple[int, ...]) -> list[torch.Tensor]:
    """Row-major multi-index of flat row indices (first factor slowest)."""
    out, stride = [], math.prod(factors)
    for f in factors:
        stride //= f
        out.append(torch.div(idx, stride, rounding_mode="floor") % f)
    return out


def _rows_lowrank(emb, factors, idx):
    u, v = factors
    return u[idx] @ v.transpose(0, 1)


def _rows_cp(emb, factors, idx):
    weights, *mats = factors
    n_rows = len(emb.shape.out_factors)
    rows = weights
    for a, digit in zip(mats[:n_rows], _digits(idx, emb.shape.out_factors)):
        rows = rows * a[digit]
    cols = mats[n_rows] if len(mats) == n_rows + 1 else _khatri_rao(list(mats[n_rows:]))
    return rows @ cols.transpose(0, 1)


def _rows_tucker(emb, factors, idx):
    core, *mats = factors
    n_rows = len(emb.shape.out_factors)
    rank = emb.parametrization.rank
    rows = None
    for a, digit in zip(mats[:n_rows], _digits(idx, emb.shape.out_factors)):
        sel = a[digit]
        rows = sel if rows is None else (rows.unsqueeze(-1) * sel.unsqueeze(1)).flatten(1)
    r_rows, r_cols = math.prod(rank[:n_rows]), math.prod(rank[n_rows:])
    t = (rows @ core.reshape(r_rows, r_cols)).reshape(-1, *rank[n_rows:])
    for n, a in enumerate(mats[n_rows:]):
        t = _mode_dot(t, a, n + 1)
    return t.reshape(idx.shape[0], -1)


def _rows_chain(emb, factors, idx):
    pairs = emb.shape.pairs()
    digits = _digits(idx, tuple(v for v, _ in pairs))

    def gather(k: int) -> torch.Tensor:  # (n, r_k, d_k, r_{k+1})
        core, (v, d) = factors[k], pairs[k]
        return core.reshape(core.shape[0], v, d, core.shape[2])[:, digits[k]].permute(1, 0, 2, 3)

    t = gather(0)
    for k in range(1, len(pairs)):
        t = torch.einsum("nxar,nrbs->nxabs", t, gather(k)).flatten(2, 3)
    if emb.parametrization.ring:  # (n, r_0, D, r_0): close the ring
        return torch.diagonal(t, dim1=1, dim2=3).sum(-1)
    return t.reshape(t.shape[0], -1)


_ROWS = {
    "lowrank": _rows_lowrank,
    "cp": _rows_cp,
    "tucker": _rows_tucker,
    "tt": _rows_chain,
    "tr": _rows_chain,
}


def embedding_flops(emb: FactorizedEmbedding, n: int) -> tuple[int, int]:
    """``(factorized, reconstructed)`` FLOPs for looking up ``n`` rows."""
    p: FactorizedWeight = emb.parametrization
    dim = emb.embedding_dim
    recon = p.reconstruction_flops() + n * dim
    if p.format == "lowrank":
        fact = 2 * n * p.rank * dim
    elif p.format == "cp":
        fact = n * p.rank * len(emb.shape.out_factors) + 2 * n * p.rank * dim + p.rank * dim
    elif p.format == "tucker":
        n_rows = len(emb.shape.out_factors)
        r_rows, r_cols = math.prod(p.rank[:n_rows]), math.prod(p.rank[n_rows:])
        fact = n * r_rows + 2 * n * r_rows * r_cols
        cur = list(p.rank[n_rows:])
        for j, d in enumerate(emb.shape.in_factors):
            fact += 2 * n * math.prod(cur) * d
            cur[j] = d
    else:
        r, pairs = p.rank, emb.shape.pairs()
        fact, prefix = 0, 1
        for k, (_, d) in enumerate(pairs):
            if k:
                fact += 2 * n * r[0] * prefix * r[k] * d * r[k + 1]
            prefix *= d
    return int(fact), int(recon)


def embedding_costs(emb: FactorizedEmbedding, n: int) -> tuple[int, int]:
    """FLOPs plus ``MEMORY_WEIGHT`` x intermediate numbers: the gathered rows and partial
    products for lookups (about ``n`` rows of the rank-widened dimension), the whole table for
    the rebuilt path."""
    fact, recon = embedding_flops(emb, n)
    p = emb.parametrization
    width = p.rank if isinstance(p.rank, int) else max(p.rank)
    return (
        fact + MEMORY_WEIGHT * n * emb.embedding_dim * width,
        recon + MEMORY_WEIGHT * 2 * p.dense_params,
    )


class FactorizedEmbedding(FactorizedLayer):
    """An ``nn.Embedding`` whose ``(num_embeddings, embedding_dim)`` table is factorized.

    The table is folded like a :class:`FactorizedLinear` weight with rows (``num_embeddings``)
    in the place of ``out`` and columns (``embedding_dim``) in the place of ``in``: ``shape``'s
    ``out_factors`` split the row index, ``in_factors`` the embedding dimension. Default format
    ``"tt"``: the TT-matrix embedding of Hrinchuk et al. (2020), where a row is the product of
    one slice per core, ``G_0[:, v_0, :, :] ... G_{d-1}[:, v_{d-1}, :, :]``, costing
    ``O(n d r^2)`` for ``n`` lookups instead of rebuilding the table. ``"lowrank"``, ``"cp"``,
    ``"tucker"`` and ``"tr"`` look rows up likewise (gathered factor rows, then the column side).
    ``implementation="auto"`` compares with rebuilding the table and indexing it (cheaper when
    many rows are looked up at once).

    ``padding_idx`` gives all-zero output rows (and no gradient) for that index, as
    ``nn.Embedding``; the factorized table itself has no zero row. Out-of-range indices raise
    ``IndexError`` (checked eagerly; under ``torch.compile`` the check is skipped).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        format: FormatName = "tt",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: str = "auto",
        rank_dropout: float = 0.0,
        init_std: float = 1.0,
        decomposition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        _positive_ints(fn, ("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim))
        fmt = check_format(format, fn)
        shape = resolve_shape(shape, num_embeddings, embedding_dim, fn, n_factors=3)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"{fn}: padding_idx must be in [{-num_embeddings}, {num_embeddings - 1}]; "
                    f"got {padding_idx}."
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.shape, self.padding_idx = shape, padding_idx
        layout = linear_layout(fmt, shape)
        rank = resolve_rank(fn, fmt, layout, rank, ratio)
        param = make_weight(fmt, layout, rank, decomposition)
        # init_std=1: nn.Embedding's N(0, 1) entries; fan_in only sets the (absent) bias bound
        self._setup(
            param,
            bias_shape=None,
            fan_in=1,
            implementation=implementation,
            rank_dropout=rank_dropout,
            init_std=init_std,
            generator=generator,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def from_dense(
        cls,
        embedding: nn.Embedding,
        *,
        format: FormatName = "tt",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: str = "auto",
        decomposition: Mapping[str, Any] | None = None,
    ) -> FactorizedEmbedding:
        """Factorize a trained ``nn.Embedding`` (``max_norm`` and ``sparse`` unsupported)."""
        fn = "FactorizedEmbedding.from_dense"
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"{fn}: expected an nn.Embedding; got {type(embedding).__name__}.")
        if embedding.max_norm is not None or embedding.sparse:
            raise ValueError(f"{fn}: max_norm and sparse=True embeddings are not supported.")
        w = embedding.weight
        layer = cls(
            embedding.num_embeddings,
            embedding.embedding_dim,
            embedding.padding_idx,
            format=format,
            rank=rank,
            ratio=ratio,
            shape=shape,
            implementation=implementation,
            decomposition=decomposition,
            device=w.device,
            dtype=w.dtype,
        )
        layer._load_dense(w, None)
        return layer

    def flops(self, n: int) -> tuple[int, int]:
        return embedding_flops(self, n)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        fn = type(self).__name__
        if (
            not isinstance(indices, torch.Tensor)
            or indices.is_floating_point()
            or indices.is_complex()
        ):
            got = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise TypeError(f"{fn}: indices must be an integer tensor; got {got}.")
        flat = indices.reshape(-1)
        if not torch.compiler.is_compiling() and flat.numel():
            lo, hi = int(flat.min()), int(flat.max())
            if lo < 0 or hi >= self.num_embeddings:
                raise IndexError(
                    f"{fn}: indices must be in [0, {self.num_embeddings - 1}]; got values in "
                    f"[{lo}, {hi}]."
                )
        factors = self.current_factors()
        if self.use_factorized(*embedding_costs(self, flat.numel())):
            rows = _ROWS[self.format](self, factors, flat)
        else:
            rows = self.parametrization(*factors)[flat]
        if self.padding_idx is not None:
            rows = rows * (flat != self.padding_idx).unsqueeze(-1).to(rows.dtype)
        return rows.reshape(*indices.shape, self.embedding_dim)

    def to_dense(self) -> nn.Embedding:
        w = self.weight.detach()
        out = nn.Embedding(
            self.num_embeddings,
            self.embedding_dim,
            self.padding_idx,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(w)
            if self.padding_idx is not None:
                out.weight[self.padding_idx] = 0
        return out
