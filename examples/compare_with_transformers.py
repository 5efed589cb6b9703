"""Run mobilevit_np and transformers on the same checkpoint and image, and compare every output.

    python examples/compare_with_transformers.py                       # untrained fixture checkpoints
    python examples/compare_with_transformers.py --checkpoint mobilevit-small
    python examples/compare_with_transformers.py --checkpoint deeplabv3-mobilevit-small

Needs torch and transformers (`pip install "mobilevit-np[parity]"`); mobilevit_np itself
never imports them. Both models read the same local folder and the same pixel_values.
Compared: the logits, the five hidden states, and the attention probabilities of every
transformer layer (transformers does not return those, so a forward hook catches them
on their way out of the softmax). A relative difference above 2e-5 is a bug.
"""

import argparse
import sys

import numpy as np
import torch
import transformers
from transformers.models.mobilevit.modeling_mobilevit import MobileViTSelfAttention
from untrained import CATS, checkpoint_folder

import mobilevit_np
from mobilevit_np.config import MobileViTConfig
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image

TOLERANCE = 2e-5  # max |ours - theirs| / max |theirs|, per tensor
MODELS = {  # transformers' class name -> mobilevit_np's class
    "MobileViTForImageClassification": mobilevit_np.MobileViTForImageClassification,
    "MobileViTForSemanticSegmentation": mobilevit_np.MobileViTForSemanticSegmentation,
}


def run_transformers(folder: str, architecture: str, pixel_values: np.ndarray) -> dict[str, np.ndarray]:
    transformers.logging.set_verbosity_error()  # it lists BatchNorm's step counters, which checkpoints may omit
    transformers.logging.disable_progress_bar()
    model = getattr(transformers, architecture).from_pretrained(folder).eval()
    softmax_outputs = []
    for module in model.modules():
        if isinstance(module, MobileViTSelfAttention):  # its dropout (identity in eval) receives the softmax
            module.dropout.register_forward_hook(lambda _m, _inputs, out: softmax_outputs.append(out.numpy()))
    with torch.no_grad():
        out = model(torch.from_numpy(pixel_values), output_hidden_states=True)
    arrays = {"logits": out.logits.numpy()}
    arrays.update({f"hidden_states[{i}]": h.numpy() for i, h in enumerate(out.hidden_states)})
    arrays.update({f"attentions[{i}]": a for i, a in enumerate(softmax_outputs)})
    return arrays


def run_ours(folder: str, architecture: str, pixel_values: np.ndarray) -> dict[str, np.ndarray]:
    model = MODELS[architecture].from_pretrained(folder)
    out = model(pixel_values, output_hidden_states=True, output_attentions=True)
    arrays = {"logits": out.logits}
    arrays.update({f"hidden_states[{i}]": h for i, h in enumerate(out.hidden_states)})
    arrays.update({f"attentions[{i}]": a for i, a in enumerate(out.attentions)})
    return arrays


def compare(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> bool:
    """Print one line per tensor: shape, max abs difference, relative difference, first values side by side."""
    if ours.keys() != theirs.keys():
        print(f"NOT OK: different outputs: {sorted(ours.keys() ^ theirs.keys())}")
        return False
    all_ok = True
    print(f"{'output':<18} {'shape':<22} {'max abs diff':>12} {'relative':>10}  first values (ours / transformers)")
    for name, theirs_array in theirs.items():
        a, b = ours[name].astype(np.float64), theirs_array.astype(np.float64)
        if a.shape != b.shape:
            print(f"{name:<18} shapes differ: {a.shape} vs {b.shape}  NOT OK")
            all_ok = False
            continue
        diff = np.abs(a - b).max()
        relative = diff / max(np.abs(b).max(), np.finfo(np.float32).tiny)
        ok = relative <= TOLERANCE
        all_ok &= ok
        first = f"{a.reshape(-1)[0]:+.6f} / {b.reshape(-1)[0]:+.6f}"
        print(f"{name:<18} {str(a.shape):<22} {diff:12.2e} {relative:10.2e}  {first}  {'OK' if ok else 'NOT OK'}")
    return all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default=str(CATS))
    parser.add_argument("--checkpoint", help="checkpoint folder (default: untrained fixtures of both heads)")
    parser.add_argument("--size", default="small", choices=["small", "x-small", "xx-small"], help="fixture size")
    args = parser.parse_args()

    heads = [None] if args.checkpoint else ["classification", "segmentation"]
    all_ok = True
    for head in heads:
        with checkpoint_folder(args.checkpoint, head or "classification", args.size) as folder:
            architecture = MobileViTConfig.from_pretrained(folder).extra.get("architectures", ["?"])[0]
            if architecture not in MODELS:
                print(f"{folder}: config.json names architecture {architecture!r}; expected one of {list(MODELS)}")
                return 1
            pixel_values = MobileViTImageProcessor.from_pretrained(folder)(load_image(args.image))["pixel_values"]
            print(f"\n{architecture} from {folder}, pixel_values {pixel_values.shape}")
            all_ok &= compare(
                run_ours(folder, architecture, pixel_values), run_transformers(folder, architecture, pixel_values)
            )
    print("\nOK: mobilevit_np matches transformers" if all_ok else "\nNOT OK: see the lines above")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
