"""Using a trained model: class predictions for images, ONNX export, and the ONNX Runtime backend."""

from .loading import load_predictor
from .predictor import Predictor

__all__ = ["Predictor", "load_predictor"]
