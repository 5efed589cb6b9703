"""Look inside MobileViT: the shape of every step, one stage's feature maps, one head's attention.

    python examples/inspect_attention.py --out-dir figures          # the cats, untrained weights
    python examples/inspect_attention.py photo.jpg --checkpoint mobilevit-small --layer 0 --head 2 --query 70 70

--layer counts the 9 transformer layers of the network in order (0-1 in
encoder.layer.2, 2-5 in encoder.layer.3, 6-8 in encoder.layer.4).
"""

import argparse
from pathlib import Path

from untrained import CATS, checkpoint_folder

from mobilevit_np import MobileViTForImageClassification
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image
from mobilevit_np.viz import image_from_pixel_values, plot_attention, plot_feature_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default=str(CATS))
    parser.add_argument("--checkpoint", help="classifier checkpoint folder (default: untrained mobilevit-small)")
    parser.add_argument("--layer", type=int, default=0, help="transformer layer, 0..8")
    parser.add_argument("--head", type=int, default=0)
    parser.add_argument("--query", type=int, nargs=2, metavar=("Y", "X"), help="pixel of the 256x256 crop")
    parser.add_argument("--stage", default="encoder.layer.1.layer.2", help="traced step whose maps to draw")
    parser.add_argument("--out-dir", default=".", help="where to write attention.png and feature_maps.png")
    args = parser.parse_args()

    with checkpoint_folder(args.checkpoint, "classification") as folder:
        model = MobileViTForImageClassification.from_pretrained(folder)
        processor = MobileViTImageProcessor.from_pretrained(folder)

    pixel_values = processor(load_image(args.image))["pixel_values"]
    trace = model.trace(pixel_values, output_attentions=True)
    print(trace)  # every named step and its shape

    attentions = trace.output.attentions  # 9 x (patch_area, heads, num_patches, num_patches)
    if not 0 <= args.layer < len(attentions):
        parser.error(f"--layer must be in 0..{len(attentions) - 1}")
    probs = attentions[args.layer]
    print(f"\nattention layer {args.layer}: {probs.shape} = (batch * patch_area, heads, num_patches, num_patches)")

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = image_from_pixel_values(pixel_values)  # the crop the model saw, back in RGB
    fig = plot_attention(image, probs, model.config.patch_size, query=args.query, head=args.head)
    fig.savefig(out / "attention.png")
    plot_feature_maps(trace[args.stage], title=args.stage).savefig(out / "feature_maps.png")
    print(f"wrote {out / 'attention.png'} and {out / 'feature_maps.png'}")


if __name__ == "__main__":
    main()
