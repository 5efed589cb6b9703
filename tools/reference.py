"""The transformers side of the parity checks (needs the `parity` extra: torch + transformers).

Used by tools/make_fixtures.py and the live parity tests (tools/ is on the tests' sys.path).
"""

from __future__ import annotations

import numpy as np

from mobilevit_np.config import LabelledConfig

OUTPUT_FIELDS = ("logits", "last_hidden_state", "pooler_output")  # besides hidden_states


def transformers_model(head: str, config: LabelledConfig, state_dict: dict[str, np.ndarray]):
    """transformers' model (MobileViT or MobileViTV2) for `head`, in eval mode, holding exactly `state_dict`."""
    import torch
    import transformers

    generation = "MobileViTV2" if config.model_type == "mobilevitv2" else "MobileViT"
    tconfig = getattr(transformers, f"{generation}Config")(**config.to_dict())
    cls = {
        "base": getattr(transformers, f"{generation}Model"),
        "classification": getattr(transformers, f"{generation}ForImageClassification"),
        "segmentation": getattr(transformers, f"{generation}ForSemanticSegmentation"),
    }[head]
    model = cls(tconfig).eval()
    result = model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"weights do not fit transformers' model: {missing} {result.unexpected_keys}")
    return model


def outputs_by_name(output) -> dict:
    """A model's output (ours or transformers') as {name: array}: logits, last_hidden_state, pooler_output
    (those it has, in this order), then hidden_states.0, hidden_states.1, ... The golden fixtures use these names."""
    named = {field: getattr(output, field) for field in OUTPUT_FIELDS if getattr(output, field, None) is not None}
    named.update({f"hidden_states.{i}": h for i, h in enumerate(output.hidden_states)})
    return named


def reference_outputs(model, pixel_values: np.ndarray, dtype) -> dict[str, np.ndarray]:
    """transformers' outputs on pixel_values in `dtype`, every hidden state too, as NumPy arrays by name."""
    import torch

    model = model.to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        out = model(torch.from_numpy(pixel_values.astype(dtype)), output_hidden_states=True)
    return {name: tensor.numpy() for name, tensor in outputs_by_name(out).items()}
