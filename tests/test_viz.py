"""The figure functions: right axes, right content, PNGs of the expected size (Agg backend, no pixels compared)."""

import io

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from PIL import Image  # noqa: E402

from mobilevit_np import MobileViTForImageClassification, viz  # noqa: E402
from mobilevit_np.palette import voc_palette  # noqa: E402
from mobilevit_np.patches import unfold  # noqa: E402


def png_size(fig) -> tuple[int, int]:
    """(width, height) in pixels of the figure saved as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        assert image.format == "PNG"
        return image.size


def expected_size(fig) -> tuple[int, int]:
    width, height = fig.get_size_inches() * fig.dpi
    return round(width), round(height)


@pytest.fixture
def image():
    return np.random.RandomState(0).randint(0, 256, (64, 64, 3)).astype(np.uint8)


def test_feature_maps_grid(make_checkpoint, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    features = model.trace(pixel_values[:1])["encoder.layer.1.layer.2"]  # (1, 16, 16, 16)
    fig = viz.plot_feature_maps(features, channels=10, ncols=4, title="layer_2")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 12 and len(shown) == 10  # 3 rows of 4, the last two left empty
    assert [ax.get_title() for ax in shown] == [f"ch {c}" for c in range(10)]
    np.testing.assert_array_equal(shown[3].images[0].get_array(), features[0, 3])
    assert fig.get_suptitle() == "layer_2"
    assert png_size(fig) == expected_size(fig) == (600, 490)

    picked = viz.plot_feature_maps(features[0], channels=[5, 1])
    assert [ax.get_title() for ax in picked.axes] == ["ch 5", "ch 1"]
    with pytest.raises(ValueError, match="not within the map's 16 channels"):
        viz.plot_feature_maps(features, channels=[16])


def test_attention_map_picks_the_query_token():
    # 2 images, 2x2 patches over a 3x4 grid of patches, 3 heads; fill each row with its own ids.
    p, nh, nw, heads = 2, 3, 4, 3
    probs = np.zeros((2 * p * p, heads, nh * nw, nh * nw))
    sequence, head, token = 1 * p * p + 1 * p + 0, 2, 2 * nw + 3  # image 1, offset (1, 0), patch (2, 3)
    probs[sequence, head, token] = np.arange(nh * nw)
    weights = viz.attention_map(probs, (nh, nw), p, query=(2 * p + 1, 3 * p + 0), head=head, batch_index=1)
    np.testing.assert_array_equal(weights, np.arange(nh * nw).reshape(nh, nw))
    with pytest.raises(ValueError, match="outside"):
        viz.attention_map(probs, (nh, nw), p, query=(nh * p, 0))


def test_attention_overlay(make_checkpoint, pixel_values, image):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    probs = model(pixel_values[:1], output_attentions=True).attentions[0]  # (4, 2, 16, 16): a 4x4 patch grid
    fig = viz.plot_attention(image, probs, patch_size=2, query=(10, 50), head=1)
    left, right, colorbar = fig.axes
    assert left.get_title() == "query pixel (10, 50)"
    assert right.get_title() == "head 1: attention over 4x4 patches"
    overlay = right.images[1].get_array()
    # query (10, 50) in a 64x64 image is pixel (1, 6) of the 8x8 map: offset (1, 0), patch (0, 3).
    np.testing.assert_array_equal(overlay, probs[2, 1, 3].reshape(4, 4))
    assert colorbar.get_ylabel() == "attention weight"
    assert png_size(fig) == expected_size(fig) == (800, 400)


def test_patch_group_diagram_shows_unfold():
    fig = viz.plot_patch_groups(4, 6, 2)
    left, right = fig.axes
    assert left.images[0].get_array().shape[:2] == (4, 6)
    assert right.images[0].get_array().shape[:2] == (4, 6)  # 4 sequences of 6 tokens
    # the token labels along sequence 0 are the patch numbers 0..5 in order
    labels = [t.get_text() for t in right.texts]
    assert labels[:6] == [str(i) for i in range(6)]
    tokens, _ = unfold(np.zeros((1, 1, 4, 6)), 2)
    assert "(4, 6, C)" in right.get_title() and tokens.shape[:2] == (4, 6)
    with pytest.raises(ValueError, match="divisible by the patch size"):
        viz.plot_patch_groups(5, 6, 2)


def test_segmentation_overlay_legend(image):
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[2:6, 2:6] = 8  # cat
    mask[0, 0] = 15  # person
    fig = viz.plot_segmentation(image, mask)
    right = fig.axes[1]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["background", "cat", "person"]
    overlay = right.images[1].get_array()
    np.testing.assert_array_equal(overlay[3, 3], voc_palette()[8])
    assert png_size(fig) == expected_size(fig) == (900, 420)
    custom = viz.plot_segmentation(image, mask, id2label={0: "sky", 8: "ground", 15: "tree"})
    assert [t.get_text() for t in custom.axes[1].get_legend().get_texts()] == ["sky", "ground", "tree"]
    with pytest.raises(ValueError, match="class indices"):
        viz.plot_segmentation(image, mask.astype(np.float32))


def test_top_k_bars():
    logits = np.array([0.0, 3.0, 1.0, 2.0, -1.0, 2.5, 0.5])
    fig = viz.plot_top_k(logits[None], {i: f"class {i}" for i in range(7)}, k=5, title="top 5")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["class 1", "class 5", "class 3", "class 2", "class 6"]
    probs = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose([bar.get_width() for bar in ax.patches], probs[[1, 5, 3, 2, 6]])
    assert ax.get_title() == "top 5"
    assert png_size(fig) == expected_size(fig) == (600, 355)


def test_image_from_pixel_values_flips_bgr():
    rgb = np.random.RandomState(0).uniform(0, 1, (5, 7, 3))
    pixel_values = rgb[:, :, ::-1].transpose(2, 0, 1)[None]  # BGR, channels first
    np.testing.assert_allclose(viz.image_from_pixel_values(pixel_values), rgb)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"mobilevit-np\[plot\]"):
        viz.plot_patch_groups()
    with pytest.raises(ImportError, match=r"mobilevit-np\[plot\]"):
        viz.plot_segmentation(np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8))
