"""The trace facility: names in execution order, shapes, and arrays equal to the normal outputs."""

import threading

import numpy as np
import pytest

from mobilevit_np import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
    MobileViTV2Config,
    MobileViTV2ForSemanticSegmentation,
)
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.random_weights import random_state_dict
from mobilevit_np.trace import Trace, record, scope, tracing


def mobilevit_stage_names(n: int, depth: int) -> list[str]:
    steps = ["downsampling_layer", "conv_kxk", "conv_1x1", "unfold"]
    steps += [f"transformer.layer.{i}" for i in range(depth)] + ["fold", "conv_projection", "fusion"]
    return [f"encoder.layer.{n}.{s}" for s in steps]


BACKBONE_NAMES = (
    ["conv_stem", "encoder.layer.0.layer.0"]
    + [f"encoder.layer.1.layer.{i}" for i in range(3)]
    + mobilevit_stage_names(2, 2)
    + mobilevit_stage_names(3, 4)
    + mobilevit_stage_names(4, 3)
)
# The output of each encoder layer, as hidden_states returns them.
STAGE_OUTPUTS = [
    "encoder.layer.0.layer.0",
    "encoder.layer.1.layer.2",
    "encoder.layer.2.fusion",
    "encoder.layer.3.fusion",
    "encoder.layer.4.fusion",
]


def test_classifier_trace_names_shapes_and_arrays(make_checkpoint, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    trace = model.trace(pixel_values, output_hidden_states=True, output_attentions=True)

    assert trace.names == BACKBONE_NAMES + ["conv_1x1_exp", "pooler", "logits"]
    # tiny config at 64x64, batch 2: patch_size 2, so 4 sequences per image.
    assert trace.shapes["conv_stem"] == (2, 8, 32, 32)
    assert trace.shapes["encoder.layer.2.conv_1x1"] == (2, 16, 8, 8)
    assert trace.shapes["encoder.layer.2.unfold"] == (8, 16, 16)
    assert trace.shapes["encoder.layer.3.transformer.layer.3"] == (8, 4, 24)
    assert trace.shapes["encoder.layer.4.fold"] == (2, 32, 2, 2)
    assert trace.shapes["pooler"] == (2, 64)

    out = trace.output
    np.testing.assert_array_equal(trace["logits"], out.logits)
    np.testing.assert_array_equal(trace["logits"], model(pixel_values).logits)
    for name, hidden in zip(STAGE_OUTPUTS, out.hidden_states, strict=True):
        np.testing.assert_array_equal(trace[name], hidden)
    assert len(out.attentions) == 2 + 4 + 3


def test_segmenter_trace_records_aspp_branches(make_checkpoint, pixel_values):
    model = MobileViTForSemanticSegmentation.from_pretrained(make_checkpoint("segmentation"))
    trace = model.trace(pixel_values)
    aspp = [f"segmentation_head.aspp.convs.{i}" for i in range(5)] + ["segmentation_head.aspp.project"]
    assert trace.names == BACKBONE_NAMES + aspp + ["logits"]
    assert trace.shapes["segmentation_head.aspp.convs.4"] == (2, 16, 1, 1)  # image-level pooling branch
    assert trace.shapes["segmentation_head.aspp.project"] == (2, 16, 2, 2)
    np.testing.assert_array_equal(trace["logits"], trace.output.logits)


def test_base_model_trace_without_head(make_checkpoint, pixel_values):
    model = MobileViTModel.from_pretrained(make_checkpoint("classification"))
    trace = model.trace(pixel_values)
    assert trace.names[-2:] == ["conv_1x1_exp", "pooler"]
    np.testing.assert_array_equal(trace["pooler"], trace.output.pooler_output)
    np.testing.assert_array_equal(trace[-1], trace.output.pooler_output)


def test_no_recording_outside_tracing(make_checkpoint, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    x = np.ones(3)
    assert record("anything", x) is x
    with tracing() as trace:
        pass
    model(pixel_values)  # after the block: nothing may land in the closed trace
    assert len(trace) == 0


def test_table_lists_every_step():
    trace = Trace()
    trace.add("conv_stem", np.zeros((1, 16, 128, 128)))
    trace.add("pooler", np.zeros((1, 640)))
    lines = str(trace).splitlines()
    assert lines[0].split("|")[1:4] == [" step ", " name        ", " shape             "]
    assert "`conv_stem`" in lines[2] and "(1, 16, 128, 128)" in lines[2]
    assert "`pooler`" in lines[3] and "(1, 640)" in lines[3]
    assert len(lines) == 4


def test_scopes_nest_and_unknown_names_are_named():
    with tracing() as trace:
        with scope("a"):
            record("x", np.zeros(1))
            with scope("b"):
                record("y", np.zeros(2))
        record("z", np.zeros(3))
    assert trace.names == ["a.x", "a.b.y", "z"]
    with pytest.raises(KeyError, match="'nope' was not recorded"):
        trace["nope"]


def test_second_forward_in_one_trace_is_refused(make_checkpoint, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    with tracing(), pytest.raises(ValueError, match="one forward pass at a time"):
        model(pixel_values)
        model(pixel_values)


def test_threads_trace_independently(make_checkpoint, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    traces: dict[int, Trace] = {}
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        traces[i] = model.trace(pixel_values[i : i + 1])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert traces[i].names == BACKBONE_NAMES + ["conv_1x1_exp", "pooler", "logits"]
        np.testing.assert_array_equal(traces[i]["logits"], model(pixel_values[i : i + 1]).logits)


def test_numba_backend_records_the_same_steps(make_checkpoint, pixel_values):
    pytest.importorskip("numba")
    folder = make_checkpoint("classification")
    reference = MobileViTForImageClassification.from_pretrained(folder).trace(pixel_values)
    fast_model = MobileViTForImageClassification.from_pretrained(folder, backend="numba")
    fast = fast_model.trace(pixel_values)
    assert list(fast.shapes.items()) == list(reference.shapes.items())  # same names, order and shapes
    np.testing.assert_array_equal(fast["logits"], fast.output.logits)


@pytest.mark.parametrize("generation", ["v1", "v2"])
def test_a_batch_run_image_by_image_equals_the_batched_reference(make_checkpoint, generation, tmp_path):
    """The reference runs a batch one image at a time (faster: each image's maps stay in cache) and joins the
    outputs: every output, hidden state and attention matches running model.py on the whole batch at once."""
    if generation == "v1":
        model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"), dtype="float64")
    else:
        config = MobileViTV2Config(
            width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[2, 1, 1], aspp_out_channels=24
        )
        save_checkpoint(tmp_path / "v2", config, random_state_dict(config, "segmentation", seed=0))
        model = MobileViTV2ForSemanticSegmentation.from_pretrained(tmp_path / "v2", dtype="float64")
    x = np.random.default_rng(0).uniform(0, 1, (3, 3, 64, 64))
    batched = model._reference_forward(x)  # model.py / model_v2.py on the batch of 3 at once
    joined = model._forward(x, True, True)  # image by image, then joined
    assert joined.keys() == batched.keys()
    for name, expected in batched.items():
        items = zip(joined[name], expected, strict=True) if isinstance(expected, list) else [(joined[name], expected)]
        for ours, theirs in items:
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, err_msg=name)
    assert len(batched["hidden_states"]) == 5 and (generation == "v2" or len(batched["attentions"]) == 9)
