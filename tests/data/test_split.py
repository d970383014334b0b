from __future__ import annotations

import pytest
import torch

from resnets.core.errors import UserError
from resnets.data import train_val_split


def balanced(per_class: int, classes: int = 10) -> torch.Tensor:
    """Labels as in CIFAR-10, classes interleaved in a shuffled order."""
    labels = torch.arange(classes).repeat(per_class)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(123))]


def test_paper_split_is_45k_train_5k_val_500_per_class() -> None:
    labels = balanced(5000)
    train, val = train_val_split(labels, 5000)
    assert (len(train), len(val)) == (45000, 5000)
    assert torch.bincount(labels[val]).tolist() == [500] * 10
    assert torch.bincount(labels[train]).tolist() == [4500] * 10


def test_indices_are_sorted_int64_disjoint_and_cover_everything() -> None:
    labels = balanced(30)
    train, val = train_val_split(labels, 40)
    for idx in (train, val):
        assert idx.dtype == torch.int64 and torch.equal(idx, idx.sort().values)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(300))


def test_uneven_val_size_is_spread_as_evenly_as_possible() -> None:
    labels = balanced(30)
    _, val = train_val_split(labels, 13)
    counts = torch.bincount(labels[val], minlength=10)
    assert counts.sum() == 13 and counts.max() - counts.min() == 1


def test_split_is_fixed_by_its_own_seed_whatever_the_global_seed() -> None:
    labels = balanced(30)
    torch.manual_seed(1)
    a = train_val_split(labels, 50)
    torch.manual_seed(2)
    b = train_val_split(labels, 50)
    c = train_val_split(labels, 50, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])


def test_val_size_zero_keeps_everything_for_training() -> None:
    train, val = train_val_split(balanced(3), 0)
    assert torch.equal(train, torch.arange(30)) and val.numel() == 0 and val.dtype == torch.int64


@pytest.mark.parametrize("val_size", [-1, 30, 31])
def test_val_size_out_of_range_is_an_error_naming_it(val_size: int) -> None:
    with pytest.raises(UserError, match=f"--val-split {val_size} must be"):
        train_val_split(balanced(3), val_size)


def test_class_too_small_for_its_share_is_an_error() -> None:
    labels = torch.tensor([0] * 20 + [1] * 2)
    with pytest.raises(UserError, match="needs 5 images of class 1, which has 2"):
        train_val_split(labels, 10)
