import numpy as np

from mobilevit_np import MobileViTForImageClassification, MobileViTForSemanticSegmentation, MobileViTModel


def test_tiny_checkpoints_load_and_run(make_checkpoint, pixel_values):
    cls = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    assert cls(pixel_values).logits.shape == (2, 5)
    seg = MobileViTForSemanticSegmentation.from_pretrained(make_checkpoint("segmentation"))
    assert seg(pixel_values).logits.shape == (2, 5, 2, 2)
    base = MobileViTModel.from_pretrained(make_checkpoint("classification"))
    out = base(pixel_values, output_hidden_states=True)
    assert out.pooler_output.shape == (2, 64)
    assert [h.shape[1] for h in out.hidden_states] == [8, 16, 16, 24, 32]
    np.testing.assert_allclose(out.pooler_output, out.last_hidden_state.mean(axis=(2, 3)), rtol=1e-6)
