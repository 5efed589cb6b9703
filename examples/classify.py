"""Classify an image with MobileViT, print the top 5, and optionally plot them.

    python examples/classify.py                                   # the cats, untrained weights
    python examples/classify.py photo.jpg --checkpoint mobilevit-small --plot top5.png

--checkpoint is a local folder holding config.json, model.safetensors and
preprocessor_config.json (e.g. apple/mobilevit-small, downloaded once).
"""

import argparse

import numpy as np
from untrained import CATS, checkpoint_folder

from mobilevit_np import MobileViTForImageClassification
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image
from mobilevit_np.layers import softmax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default=str(CATS))
    parser.add_argument("--checkpoint", help="checkpoint folder (default: untrained mobilevit-small)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--plot", metavar="PNG", help="also save a bar chart of the top k (needs matplotlib)")
    args = parser.parse_args()

    with checkpoint_folder(args.checkpoint, "classification") as folder:
        model = MobileViTForImageClassification.from_pretrained(folder)
        processor = MobileViTImageProcessor.from_pretrained(folder)

    # Resize the shortest edge, center crop, scale to [0, 1], flip RGB -> BGR: (1, 3, 256, 256).
    pixel_values = processor(load_image(args.image))["pixel_values"]
    logits = model(pixel_values).logits[0]  # (num_labels,)
    probs = softmax(logits.astype(np.float64))
    for rank, i in enumerate(np.argsort(-probs)[: args.top_k], start=1):
        print(f"{rank}. {probs[i]:6.2%}  {model.config.id2label[int(i)]}")

    if args.plot:
        from mobilevit_np.viz import plot_top_k

        plot_top_k(logits, model.config.id2label, k=args.top_k, title=args.image).savefig(args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
