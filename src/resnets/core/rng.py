"""Randomness as a pure function of (seed, keys): a run resumes exactly from its iteration number alone."""

from __future__ import annotations

import numpy as np
import torch

# The random streams, one key each, so that one kind of randomness never shifts another. The values are fixed for
# good: committed runs resume on them.
EPOCH_ORDER = 1  # the permutation of each epoch (data.sampler)
CIFAR_AUGMENT = 2  # CIFAR's pad-and-crop and flips (Sec. 4.2; training.batches)
IMAGENET_AUGMENT = 3  # ImageNet's scale augmentation, crops and flips (Sec. 3.4; data.loader)
LIGHTING = 4  # AlexNet's colour noise (training.batches)
DETECTION_FLIP = 11  # detection's horizontal flips (detection.training)
DETECTION_SAMPLE = 12  # the RPN's and the RoI head's samples (detection.training)


def seeded_generator(seed: int, *keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` whose stream depends only on `seed` and `keys` (e.g. epoch, iteration, rank)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))
