"""Using a trained model: class predictions for images, ONNX export, and the ONNX Runtime backend."""

from .predictor import Predictor, load_predictor

__all__ = ["Predictor", "load_predictor"]
