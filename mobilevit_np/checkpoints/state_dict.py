"""Find a checkpoint's weights, check them against the config, and arrange them as a tree.

A transformers checkpoint folder holds config.json and model.safetensors (or shards
listed in model.safetensors.index.json). Parameter names are transformers' own, e.g.
`mobilevit.encoder.layer.2.transformer.layer.0.attention.attention.query.weight`.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from mobilevit_np.checkpoints.safetensors_io import WeightsError, load_safetensors, write_safetensors
from mobilevit_np.config import MobileViTConfig

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
HEAD_PREFIXES = ("classifier.", "segmentation_head.")
EXPANSION_PREFIX = "conv_1x1_exp."  # MobileViTModel's 1x1 expansion, absent with expand_output=False


def load_checkpoint_tensors(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of the checkpoint in `folder` (single file or sharded)."""
    folder = os.fspath(folder)
    single = os.path.join(folder, SAFETENSORS_FILE)
    index = os.path.join(folder, SAFETENSORS_INDEX)
    bin_file = os.path.join(folder, PYTORCH_FILE)
    if os.path.isfile(single):
        from mobilevit_np.checkpoints.torch_pickle import is_stale_copy, load_and_convert

        if is_stale_copy(single, bin_file):
            warnings.warn(f"{bin_file} changed since it was converted to {single}; converting it again", stacklevel=2)
            return load_and_convert(bin_file, overwrite=True)
        return load_safetensors(single)
    if os.path.isfile(index):
        return _load_sharded(folder, index)
    if os.path.isfile(bin_file):
        # Never pickle.load: the allowlist reader accepts tensors only, and saves
        # model.safetensors beside the .bin so that this happens once (with a warning).
        from mobilevit_np.checkpoints.torch_pickle import load_and_convert

        return load_and_convert(bin_file)
    raise WeightsError(f"no {SAFETENSORS_FILE} or {SAFETENSORS_INDEX} (or {PYTORCH_FILE}) in {folder}")


def _load_sharded(folder: str, index_file: str) -> dict[str, np.ndarray]:
    weight_map = _read_weight_map(index_file)
    tensors: dict[str, np.ndarray] = {}
    found_in: dict[str, str] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path):
            raise WeightsError(f"{index_file} names shard {shard!r}, which is missing from {folder}")
        for name, value in load_safetensors(shard_path).items():
            if name in found_in:  # two shards with one name: which one is meant cannot be known
                raise WeightsError(f"tensor {name} is in two shards: {found_in[name]} and {shard} (in {folder})")
            tensors[name], found_in[name] = value, shard
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise WeightsError(f"{index_file} lists tensors its shards do not hold: {', '.join(missing)}")
    return tensors


def _read_weight_map(index_file: str) -> dict[str, str]:
    """The index's {tensor name: shard file}, each shard a file name inside the checkpoint folder."""
    try:
        with open(index_file, encoding="utf-8") as f:
            index = json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WeightsError(f"{index_file}: not a valid safetensors index: not JSON ({e})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise WeightsError(
            f'{index_file}: not a valid safetensors index: needs a "weight_map" object of '
            "{tensor name: shard file name}"
        )
    for shard in set(weight_map.values()):
        # A shard outside the folder ("../x", "/etc/x") is not part of this checkpoint.
        normalized = os.path.normpath(shard)
        if os.path.isabs(shard) or normalized in (os.curdir, os.pardir) or normalized.startswith(os.pardir + os.sep):
            raise WeightsError(f"{index_file} names shard {shard!r}, which is not a file inside the checkpoint folder")
    return weight_map


def select_for_head(
    tensors: dict[str, np.ndarray], head: str, expand_output: bool = True, backbone: str = "mobilevit"
) -> dict[str, np.ndarray]:
    """Rename a checkpoint's tensors to what `head` expects, as transformers does.

    A bare MobileViTModel takes the backbone of a classifier or segmenter checkpoint:
    the `mobilevit.` prefix (`backbone`.: "mobilevitv2." for MobileViTV2) is dropped and
    the head's own weights set aside, and so is the classifier's conv_1x1_exp when the
    model is built with expand_output=False.
    """
    prefix = backbone + "."
    if head != "base" or not any(k.startswith(prefix) for k in tensors):
        return tensors
    selected = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            name = name[len(prefix) :]
            if expand_output or not name.startswith(EXPANSION_PREFIX):
                selected[name] = value
        elif not name.startswith(HEAD_PREFIXES):
            selected[name] = value  # kept, so check_state_dict reports it as unexpected
    return selected


def check_state_dict(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], source: str) -> None:
    """Raise one WeightsError listing every missing, unexpected, mis-shaped or non-float tensor."""
    problems = []
    # BatchNorm's step counter is training state that transformers saves; nothing uses it.
    present = {k for k in tensors if not k.endswith(".num_batches_tracked")}
    for name in sorted(set(expected) - present):
        problems.append(f"missing tensor {name} (expected shape {expected[name]})")
    for name in sorted(present - set(expected)):
        problems.append(f"unexpected tensor {name} (shape {tensors[name].shape})")
    for name in sorted(present & set(expected)):
        if tensors[name].shape != expected[name]:
            problems.append(f"shape mismatch for {name}: file has {tensors[name].shape}, config needs {expected[name]}")
        elif not np.issubdtype(tensors[name].dtype, np.floating):
            problems.append(f"dtype mismatch for {name}: file has {tensors[name].dtype}, a float type is needed")
    if problems:
        raise WeightsError(
            f"{source} does not match the config ({len(problems)} problem{'s' * (len(problems) > 1)}):\n  "
            + "\n  ".join(problems)
        )
    bad = [name for name in sorted(expected) if not np.isfinite(tensors[name]).all()]
    if bad:
        warnings.warn(f"{source}: NaN or Inf values in {', '.join(bad)}", RuntimeWarning, stacklevel=3)


def prepare_state_dict(
    tensors: dict[str, np.ndarray],
    expected: dict[str, tuple[int, ...]],
    head: str,
    dtype: np.dtype,
    source: str,
    copy: bool = False,
    backbone: str = "mobilevit",
) -> dict[str, np.ndarray]:
    """Check `tensors` against the expected shapes and cast them to `dtype`.

    copy=True always returns new arrays, so that a model never shares memory with the caller's
    state_dict (a cast alone returns the caller's own array when no conversion is needed).
    """
    expand_output = any(name.startswith(EXPANSION_PREFIX) for name in expected)  # only a base model can lack it
    tensors = select_for_head(tensors, head, expand_output, backbone)
    check_state_dict(tensors, expected, source)
    if copy:  # np.array copies by default (NumPy 1 and 2)
        return {name: np.array(tensors[name], dtype=dtype, order="C") for name in expected}
    return {name: np.ascontiguousarray(tensors[name], dtype=dtype) for name in expected}


def build_tree(state_dict: dict[str, np.ndarray]) -> dict:
    """Nest flat dotted names: {"a.0.b": w} -> {"a": [{"b": w}]}.

    Segments that are integers index lists, so `p["encoder"]["layer"][2]` reads like the name.
    """
    tree: dict = {}
    for name, value in state_dict.items():
        node = tree
        *path, leaf = name.split(".")
        for segment in path:
            node = node.setdefault(segment, {})
        node[leaf] = value
    return _lists_from_int_keys(tree, "")


def _lists_from_int_keys(node, prefix: str):
    if not isinstance(node, dict):
        return node
    children = {k: _lists_from_int_keys(v, f"{prefix}{k}.") for k, v in node.items()}
    if children and all(k.isdigit() for k in children):
        # A list needs exactly 0..n-1: a gap ("a.0", "a.2") or "a.01" has no list position.
        if set(children) != {str(i) for i in range(len(children))}:
            where = f"under {prefix.rstrip('.')!r}" if prefix else "at the top level"
            found = ", ".join(sorted(children, key=int))
            raise ValueError(f"numbered names {where} must run 0..{len(children) - 1} without gaps, found {found}")
        return [children[str(i)] for i in range(len(children))]
    return children


def save_checkpoint(folder: str | os.PathLike, config: MobileViTConfig, state_dict: dict[str, np.ndarray]) -> None:
    """Write config.json and model.safetensors in the layout transformers' save_pretrained uses."""
    os.makedirs(folder, exist_ok=True)
    config.save_pretrained(folder)
    write_safetensors(state_dict, os.path.join(folder, SAFETENSORS_FILE), overwrite=True)
