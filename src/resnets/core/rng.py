"""Randomness as a pure function of (seed, keys): a run resumes exactly from its iteration number alone."""

from __future__ import annotations

import numpy as np
import torch


def seeded_generator(seed: int, *keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` whose stream depends only on `seed` and `keys` (e.g. epoch, iteration, rank)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))
