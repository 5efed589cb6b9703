"""mobilevit_np: MobileViT in plain NumPy, matching Hugging Face transformers' numbers."""

from mobilevit_np.checkpoints.safetensors_io import WeightsError
from mobilevit_np.config import ConfigError, MobileViTConfig
from mobilevit_np.image_processing import MobileViTImageProcessor
from mobilevit_np.modeling import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "MobileViTConfig",
    "MobileViTForImageClassification",
    "MobileViTForSemanticSegmentation",
    "MobileViTImageProcessor",
    "MobileViTModel",
    "WeightsError",
    "__version__",
]
