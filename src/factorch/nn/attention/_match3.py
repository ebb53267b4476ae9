r"""The Match3 task (Sanford, Hsu & Telgarsky, 2023): detect triples that sum to zero.

A sequence ``x_1, ..., x_n`` of integers modulo ``M`` is labelled per position:

.. math:: y_i = \mathbb 1\big[\exists\, j, k \in \{1..n\}: x_i + x_j + x_k \equiv 0 \pmod M\big]

(``j`` and ``k`` range over all positions, ``i`` and ``j = k`` included). Sanford et al. prove
that one layer of standard (pairwise) attention needs a width polynomial in ``n`` to compute it,
while a third-order ("tensor") attention head of small width does; it is the task that motivates
Alman & Song's tensor attention.
"""

from __future__ import annotations

import torch

from ..._checks import as_tensor, check_generator, check_positive_int
from ..._numerics import check_memory
from ._inputs import check_bool


def _check_label_memory(rows: int, n: int, device: torch.device, fn: str) -> None:
    # pair sums (rows, n²) int64, sorted (values and indices): 24 n² bytes per sequence
    check_memory(
        rows * 24 * n * n,
        torch.uint8,
        device,
        fn,
        f"labelling {rows} sequences of length {n}",
        hint="use fewer or shorter sequences",
    )


def match3_labels(x: torch.Tensor, modulus: int) -> torch.Tensor:
    """Match3 labels ``(..., n)`` (bool) of integer sequences ``x (..., n)`` modulo ``modulus``.

    Differentiable: no (integer data).

    Args:
        x: integer tokens ``(..., n)`` (a torch tensor or a numpy integer array; any sign, they
            are reduced modulo ``modulus``).
        modulus: ``M``.

    Returns:
        Bool labels of ``x``'s shape, on ``x``'s device.

    Raises:
        TypeError: ``x`` is not an integer tensor with at least one dimension (bool refused), or
            ``modulus`` is not an int.
        ValueError: ``modulus`` is not positive, or the working set (``24 n²`` bytes per
            sequence; none depends on ``M``) cannot fit in the device's memory.

    Example:
        >>> import torch
        >>> from factorch.nn.attention import match3_labels
        >>> match3_labels(torch.tensor([1, 2, 4]), 7)  # 1+2+4, 2+1+4, 4+1+2 = 7
        tensor([True, True, True])
    """
    fn = "match3_labels"
    m = check_positive_int(modulus, fn, "modulus")
    if not isinstance(x, torch.Tensor) and x is not None and not isinstance(x, (str, float)):
        x = as_tensor(x, fn, "x")
    if (
        not isinstance(x, torch.Tensor)
        or x.is_floating_point()
        or x.is_complex()
        or x.dtype == torch.bool
        or x.ndim < 1
    ):
        got = (
            f"dtype {x.dtype}, shape {tuple(x.shape)}"
            if isinstance(x, torch.Tensor)
            else f"{type(x).__name__} {x!r:.40}"
        )
        raise TypeError(
            f"{fn}: x must be an integer tensor of shape (..., n); got {got}; convert "
            "tokens with .long()."
        )
    n = x.shape[-1]
    _check_label_memory(x.numel() // max(n, 1), n, x.device, fn)
    if n == 0:
        return torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    xr = x.long().remainder(m)
    # y_i: is -x_i (mod M) among the pair sums x_j + x_k (mod M)? Sorted pair sums and a binary
    # search per position: memory O(n²) per sequence whatever M is.
    pair = (xr.unsqueeze(-1) + xr.unsqueeze(-2)).remainder(m).flatten(-2).sort(-1).values
    pair = pair.contiguous()
    need = (-xr).remainder(m).contiguous()
    at = torch.searchsorted(pair, need).clamp_max(n * n - 1)
    return pair.gather(-1, at) == need


def match3(
    num_samples: int,
    length: int,
    modulus: int,
    *,
    balance: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample Match3 sequences and their labels.

    Tokens are uniform modulo ``modulus``. With ``balance`` (default) candidate sequences are
    accepted greedily: a candidate is kept when the running fraction of positive labels stays
    within 0.01 of 1/2 with it, or gets closer to 1/2 (so the returned labels are balanced to
    within 0.01, or a ValueError says it could not be done); the fraction of positives of a
    uniform sequence is about ``1 - (1 - 1/M)^{n(n+1)/2}``, so a modulus near ``0.7 n²`` makes
    balancing cheap.

    Args:
        num_samples: number of sequences ``N``.
        length: sequence length ``n``.
        modulus: ``M``.
        balance: balance the positive and negative labels.
        generator: randomness.

    Returns:
        ``(x, y)``: tokens ``(N, n)`` int64 in ``[0, M)`` and labels ``(N, n)`` bool.

    Raises:
        TypeError, ValueError: bad arguments; ``ValueError`` when balancing rejects too many
            candidates (the modulus is far from ``0.7 n²``), or when the sizes cannot fit in
            memory.

    Example:
        >>> import torch
        >>> from factorch.nn.attention import match3
        >>> x, y = match3(1000, 8, 44, generator=torch.Generator().manual_seed(0))
        >>> x.shape, abs(float(y.float().mean()) - 0.5) < 0.03
        (torch.Size([1000, 8]), True)
    """
    fn = "match3"
    n_samples = check_positive_int(num_samples, fn, "num_samples")
    n = check_positive_int(length, fn, "length")
    m = check_positive_int(modulus, fn, "modulus")
    check_bool(fn, "balance", balance)
    gen = check_generator(generator, fn)
    check_memory(
        max(64, 2 * n_samples) * n,
        torch.int64,
        "cpu",
        fn,
        f"{n_samples} sequences of length {n}",
        hint="use fewer or shorter sequences",
    )
    _check_label_memory(max(64, 2 * n_samples), n, torch.device("cpu"), fn)
    if not balance:
        x = torch.randint(0, m, (n_samples, n), generator=gen)
        return x, match3_labels(x, m)
    kept_x: list[torch.Tensor] = []
    pos, total, tries = 0, 0, 0
    while total < n_samples * n:
        tries += 1
        if tries > 200:
            raise ValueError(
                f"{fn}: could not balance the labels for length={n}, modulus={m}; choose a "
                f"modulus near 0.7 * length**2 = {0.7 * n * n:.0f} or pass balance=False."
            )
        cand = torch.randint(0, m, (max(64, 2 * n_samples), n), generator=gen)
        counts = match3_labels(cand, m).sum(-1).tolist()
        for row, c in zip(cand, counts):
            now = abs(pos / total - 0.5) if total else 0.5
            new = abs((pos + c) / (total + n) - 0.5)
            if new <= 0.01 or new < now:  # inside the band, or closer to it
                kept_x.append(row)
                pos, total = pos + c, total + n
                if total >= n_samples * n:
                    break
    if abs(pos / total - 0.5) > 0.01:
        raise ValueError(
            f"{fn}: could not balance the labels for length={n}, modulus={m} (positive "
            f"fraction {pos / total:.2f}); choose a modulus near 0.7 * length**2 = "
            f"{0.7 * n * n:.0f} or pass balance=False."
        )
    x = torch.stack(kept_x)
    return x, match3_labels(x, m)
