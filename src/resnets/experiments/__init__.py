"""The paper's experiments as resumable commands: the degradation figures and Table 6."""

from .degradation import degradation
from .table6 import table6

__all__ = ["degradation", "table6"]
