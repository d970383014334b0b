"""Where resnets keeps what it downloads and derives: one cache root, set by $RESNETS_CACHE."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$RESNETS_CACHE if set, else ~/.cache/resnets: decoded-image caches, weights, ONNX graphs, datasets."""
    env = os.environ.get("RESNETS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnets"


def default_data_dir() -> Path:
    """Where datasets are downloaded: $RESNETS_DATA if set, else the cache root's data/ folder."""
    env = os.environ.get("RESNETS_DATA")
    return Path(env).expanduser() if env else default_cache_dir() / "data"
