"""resnets: the networks, recipes, test protocols and analyses of He et al., "Deep Residual Learning" (CVPR 2016)."""

from .analysis.complexity import measure, model_complexity
from .errors import UserError
from .models import ResNet, ResNetConfig, create_model, list_models, model_config

__version__ = "0.1.0"
__all__ = [
    "ResNet",
    "ResNetConfig",
    "UserError",
    "create_model",
    "list_models",
    "measure",
    "model_complexity",
    "model_config",
]
