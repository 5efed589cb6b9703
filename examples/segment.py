"""Segment an image with a DeepLabV3-MobileViT, print the classes found, and optionally draw them.

    python examples/segment.py                                     # the cats, untrained weights
    python examples/segment.py photo.jpg --checkpoint deeplabv3-mobilevit-small --plot overlay.png

The mask comes back at the image's own size: the logits (1/16 of the 512x512 crop) are
upsampled to the crop, and the crop is put back where it came from in the photo.
"""

import argparse

import numpy as np
from untrained import CATS, checkpoint_folder

from mobilevit_np import MobileViTForSemanticSegmentation
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image
from mobilevit_np.postprocess import OUTSIDE, segment_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default=str(CATS))
    parser.add_argument("--checkpoint", help="segmentation checkpoint folder (default: untrained deeplabv3 small)")
    parser.add_argument("--plot", metavar="PNG", help="also save the image with the mask over it (needs matplotlib)")
    args = parser.parse_args()

    with checkpoint_folder(args.checkpoint, "segmentation") as folder:
        model = MobileViTForSemanticSegmentation.from_pretrained(folder)
        processor = MobileViTImageProcessor.from_pretrained(folder)

    image = load_image(args.image)
    mask = segment_image(model, processor, image)  # (H, W) class indices; OUTSIDE where the crop cut
    labels = {**model.config.id2label, OUTSIDE: "(outside the crop)"}
    classes, counts = np.unique(mask, return_counts=True)
    print(f"{args.image}: {mask.shape[1]}x{mask.shape[0]} pixels")
    for c, n in sorted(zip(classes, counts, strict=True), key=lambda cn: -cn[1]):
        print(f"  {n / mask.size:7.2%}  {labels[int(c)]}")

    if args.plot:
        from mobilevit_np.viz import plot_segmentation

        plot_segmentation(image, mask, labels, title=args.image).savefig(args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
