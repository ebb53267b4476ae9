"""``FactorizedEmbedding``: a factorized embedding table, looked up without rebuilding it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ._layer import FactorizedLayer, Implementation, build_format, errors_named
from ._linear import linear_layout
from ._spec import TensorizedShape, _positive_ints, resolve_shape
from .formats import MEMORY_WEIGHT, known_size

__all__ = ["FactorizedEmbedding", "embedding_costs", "embedding_flops"]


def embedding_flops(emb: FactorizedEmbedding, n: int) -> tuple[int, int]:
    """``(factorized, reconstructed)`` FLOPs for looking up ``n`` rows."""
    p = emb.parametrization
    return p.embedding_flops(emb.shape, n), p.reconstruction_flops() + n * emb.embedding_dim


def embedding_costs(emb: FactorizedEmbedding, n: int) -> tuple[int, int]:
    """``(factorized, reconstructed)`` FLOPs plus ``MEMORY_WEIGHT`` x intermediate numbers: the
    format's gathered rows and partial products for lookups, the whole table (written, then read)
    for the rebuilt path."""
    fact, recon = embedding_flops(emb, n)
    p = emb.parametrization
    return (
        fact + MEMORY_WEIGHT * p.embedding_traffic(emb.shape, n),
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

    Args:
        num_embeddings, embedding_dim, padding_idx: as ``nn.Embedding``.
        format: the name of a registered format (``"tt"`` by default).
        rank: int or tuple, as the format takes it; exclusive with ``ratio``.
        ratio: fraction of the dense table's parameter count.
        shape: how rows and columns fold into factors (default: three factors each).
        implementation: ``"auto"``, ``"factorized"`` or ``"reconstructed"``.
        init_std: entry standard deviation of the random table (1, as ``nn.Embedding``).
        rank_dropout, decomposition, generator, device, dtype: as :class:`FactorizedLinear`.

    Raises:
        TypeError: a float ``rank``, a non-floating ``dtype``, a bad ``shape`` or generator.
        ValueError: non-positive sizes, ``padding_idx`` out of range, an unknown format, an
            out-of-range rank, or not exactly one of ``rank`` and ``ratio``.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> emb = FactorizedEmbedding(1000, 64, rank=8, generator=gen)  # a TT-matrix table
        >>> emb.shape.out_factors, emb(torch.tensor([[1, 2, 999]])).shape
        ((10, 10, 10), torch.Size([1, 3, 64]))
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        format: str = "tt",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: Implementation = "auto",
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
        spec = resolve_shape(shape, num_embeddings, embedding_dim, fn, n_factors=3)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"{fn}: padding_idx must be in [{-num_embeddings}, {num_embeddings - 1}]; "
                    f"got {padding_idx}."
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.shape, self.padding_idx = spec, padding_idx
        param = build_format(
            fn,
            format,
            lambda cls: linear_layout(cls, spec),
            rank=rank,
            ratio=ratio,
            decomposition=decomposition,
        )
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
        format: str = "tt",
        rank: Any = None,
        ratio: float | None = None,
        shape: TensorizedShape | None = None,
        implementation: Implementation = "auto",
        decomposition: Mapping[str, Any] | None = None,
    ) -> FactorizedEmbedding:
        """Factorize a trained ``nn.Embedding`` (``max_norm`` and ``sparse`` unsupported),
        keeping its ``padding_idx``, device, dtype and training/eval mode. Not differentiable.

        Raises:
            TypeError: ``embedding`` is not an ``nn.Embedding``.
            ValueError: ``max_norm``/``sparse``; NaN or Inf entries; bad format, rank or ratio.

        Example:
            >>> table = torch.nn.Embedding(1000, 64)
            >>> FactorizedEmbedding.from_dense(table, rank=8).rank
            (1, 8, 8, 1)
        """
        fn = "FactorizedEmbedding.from_dense"
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"{fn}: expected an nn.Embedding; got {type(embedding).__name__}.")
        if embedding.max_norm is not None or embedding.sparse:
            raise ValueError(f"{fn}: max_norm and sparse=True embeddings are not supported.")
        w = embedding.weight
        with errors_named(fn, inner=cls.__name__):
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
            layer._load_dense(w, None, training=embedding.training, fn=fn)
        return layer

    def flops(self, n: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` FLOPs for looking up ``n`` rows."""
        return embedding_flops(self, n)

    def costs(self, n: int) -> tuple[int, int]:
        """``(factorized, reconstructed)`` costs the ``"auto"`` choice compares."""
        return embedding_costs(self, known_size(n))

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        fn = type(self).__name__
        if (
            not isinstance(indices, torch.Tensor)
            or indices.is_floating_point()
            or indices.is_complex()
            or indices.dtype == torch.bool
        ):
            got = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise TypeError(f"{fn}: indices must be an integer tensor; got {got}.")
        flat = indices.reshape(-1)
        tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
        if not tracing and flat.numel():
            lo, hi = int(flat.min()), int(flat.max())
            if lo < 0 or hi >= self.num_embeddings:
                raise IndexError(
                    f"{fn}: indices must be in [0, {self.num_embeddings - 1}]; got values in "
                    f"[{lo}, {hi}]."
                )
        factors = self.current_factors()
        p = self.parametrization
        n = known_size(flat.shape[0])  # no lookups: index the rebuilt (empty) selection
        if n != 0 and self.takes_factorized(lambda: self.costs(n)):
            rows = p.embedding_rows(factors, flat, self.shape)
        else:
            rows = self.parametrization(*factors)[flat]
        if self.padding_idx is not None:
            rows = rows * (flat != self.padding_idx).unsqueeze(-1).to(rows.dtype)
        return rows.reshape(*indices.shape, self.embedding_dim)

    def _config_args(self) -> dict[str, Any]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
            "shape": [list(self.shape.out_factors), list(self.shape.in_factors)],
        }

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> FactorizedEmbedding:
        """The layer :meth:`config` describes, with random factors (no decomposition is run)."""
        args = cls._check_config(config)
        out_factors, in_factors = args.pop("shape")
        shape = TensorizedShape(tuple(out_factors), tuple(in_factors))
        return cls(**args, shape=shape, device=device, dtype=dtype)

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
        out.train(self.training)
        return out
