"""The transformers side of the parity checks (needs the `parity` extra: torch + transformers)."""

from __future__ import annotations

import numpy as np

from mobilevit_np import MobileViTConfig


def transformers_model(head: str, config: MobileViTConfig, state_dict: dict[str, np.ndarray]):
    """transformers' model for `head`, in eval mode, holding exactly `state_dict`."""
    import torch
    import transformers

    tconfig = transformers.MobileViTConfig(**config.to_dict())
    cls = {
        "base": transformers.MobileViTModel,
        "classification": transformers.MobileViTForImageClassification,
        "segmentation": transformers.MobileViTForSemanticSegmentation,
    }[head]
    model = cls(tconfig).eval()
    result = model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"weights do not fit transformers' model: {missing} {result.unexpected_keys}")
    return model


def reference_outputs(model, pixel_values: np.ndarray, dtype) -> dict:
    """{'hidden_states': [...], 'logits' or 'last_hidden_state'/'pooler_output': ...} as NumPy arrays."""
    import torch

    model = model.to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        out = model(torch.from_numpy(pixel_values.astype(dtype)), output_hidden_states=True)
    outputs = {"hidden_states": [h.numpy() for h in out.hidden_states]}
    for field in ("logits", "last_hidden_state", "pooler_output"):
        if getattr(out, field, None) is not None:
            outputs[field] = getattr(out, field).numpy()
    return outputs
