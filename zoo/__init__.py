"""keras-zoo: a computer-vision model zoo on Keras 3 and TensorFlow."""
from zoo.models import create_model
from zoo.pipeline import evaluate, train
from zoo.recipe import load_recipe
from zoo.registry import list_models
from zoo.weights import list_pretrained


__all__ = ["create_model", "evaluate", "list_models", "list_pretrained", "load_recipe", "train"]
__version__ = "0.1.0"
