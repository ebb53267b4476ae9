"""Hold-out masks: partitions of the observed entries, numpy masks, pinned errors."""

from __future__ import annotations

import pytest
import torch

from factorch.completion import holdout_mask, split_mask


def test_holdout_and_split_masks_partition_the_observed_entries():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(8, 7, 6, generator=gen) < 0.7
    train, held = holdout_mask(mask, 0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(train | held, mask) and not bool((train & held).any())
    assert int(held.sum()) == round(0.1 * int(mask.sum()))
    parts = split_mask(mask, (0.5, 0.3, 0.2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(parts[0] | parts[1] | parts[2], mask)
    assert sum(int(p.sum()) for p in parts) == int(mask.sum())


def test_numpy_masks_give_torch_masks():
    mask = torch.rand(8, 7, generator=torch.Generator().manual_seed(0)) < 0.7
    a = holdout_mask(mask.numpy(), 0.2, generator=torch.Generator().manual_seed(1))
    b = holdout_mask(mask, 0.2, generator=torch.Generator().manual_seed(1))
    assert all(isinstance(x, torch.Tensor) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


SPLIT_ERRORS = {
    "fraction": (
        ValueError,
        r"holdout_mask: fraction must be in \(0, 1\); got 1.5",
        lambda: holdout_mask(torch.ones(3, 2, dtype=torch.bool), 1.5),
    ),
    "mask dtype": (
        TypeError,
        r"split_mask: mask must be a bool tensor \(True = observed\); got torch.float32",
        lambda: split_mask(torch.ones(3, 2), (0.5, 0.5)),
    ),
    "no observed": (
        ValueError,
        r"split_mask: mask has no observed \(True\) entry",
        lambda: split_mask(torch.zeros(3, 2, dtype=torch.bool), (0.5, 0.5)),
    ),
    "fractions sum": (
        ValueError,
        r"split_mask: fractions must be positive and sum to 1; got \(0.5, 0.6\)",
        lambda: split_mask(torch.ones(3, 2, dtype=torch.bool), (0.5, 0.6)),
    ),
    "fractions type": (
        TypeError,
        r"split_mask: fractions must be a sequence of floats; got 0.5",
        lambda: split_mask(torch.ones(3, 2, dtype=torch.bool), 0.5),
    ),
    "generator": (
        TypeError,
        r"holdout_mask: generator must be a torch.Generator or None; got int",
        lambda: holdout_mask(torch.ones(3, 2, dtype=torch.bool), 0.5, generator=0),
    ),
    "mask type": (
        TypeError,
        r"holdout_mask: mask must be a torch.Tensor or a numpy array; got NoneType",
        lambda: holdout_mask(None, 0.5),
    ),
}


@pytest.mark.parametrize("case", list(SPLIT_ERRORS), ids=list(SPLIT_ERRORS))
def test_split_errors(case):
    exc, message, call = SPLIT_ERRORS[case]
    with pytest.raises(exc, match=message):
        call()
