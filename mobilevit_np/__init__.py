"""mobilevit_np: MobileViT in plain NumPy, matching Hugging Face transformers' numbers."""

from mobilevit_np.auto import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSemanticSegmentation,
)
from mobilevit_np.checkpoints.safetensors_io import WeightsError
from mobilevit_np.config import ConfigError, MobileViTConfig
from mobilevit_np.config_v2 import MobileViTV2Config, load_config
from mobilevit_np.fast_processor import MobileViTImageProcessorFast
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image
from mobilevit_np.modeling import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
)
from mobilevit_np.modeling_v2 import (
    MobileViTV2ForImageClassification,
    MobileViTV2ForSemanticSegmentation,
    MobileViTV2Model,
)
from mobilevit_np.pipelines import pipeline

__version__ = "0.1.0"

__all__ = [
    "AutoConfig",
    "AutoImageProcessor",
    "AutoModel",
    "AutoModelForImageClassification",
    "AutoModelForSemanticSegmentation",
    "ConfigError",
    "MobileViTConfig",
    "MobileViTForImageClassification",
    "MobileViTForSemanticSegmentation",
    "MobileViTImageProcessor",
    "MobileViTImageProcessorFast",
    "MobileViTModel",
    "MobileViTV2Config",
    "MobileViTV2ForImageClassification",
    "MobileViTV2ForSemanticSegmentation",
    "MobileViTV2Model",
    "WeightsError",
    "__version__",
    "load_image",
    "pipeline",
    "load_config",
]
