"""The fixed train/validation split of a training set (the paper holds out 5k of CIFAR-10's 50k, Sec. 4.2)."""

from __future__ import annotations

import torch

from ..core.errors import UserError


def train_val_split(labels: torch.Tensor, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted int64 (train, val) indices; val takes val_size images, spread as evenly as possible over classes.

    Errors name the setting by its flag, --val-split, the one way users choose val_size.
    """
    labels = labels.cpu()
    n = len(labels)
    if not 0 <= val_size < n:
        raise UserError(f"--val-split {val_size} must be at least 0 and below the {n} images of the training set")
    # Its own generator, so every run shares this split whatever its training seed.
    generator = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    per_class, extra = divmod(val_size, len(classes))
    val = []
    for i, c in enumerate(classes):
        members = torch.nonzero(labels == c).flatten()
        take = per_class + (i < extra)  # the first `extra` classes give one image more
        if take > len(members):
            raise UserError(f"--val-split {val_size} needs {take} images of class {int(c)}, which has {len(members)}")
        val.append(members[torch.randperm(len(members), generator=generator)[:take]])
    val_idx = torch.cat(val).sort().values
    in_train = torch.ones(n, dtype=torch.bool)
    in_train[val_idx] = False
    return torch.nonzero(in_train).flatten(), val_idx
