"""Will a forward pass fit in memory? Estimated before running, so that a batch too large fails
at once, saying what to lower, rather than minutes later when the allocator gives up.

Peak memory of the NumPy path for one float32 image (tracemalloc, MobileViT-small, batch 1):
256x256: 50 MB, 512x512: 297 MB, 1024x1024: 4.4 GB; it grows linearly with the batch
(batch 64 at 512x512: 17.8 GB). The larger of two moments explains it:

    convolutions  ~6 x the largest feature map: an inverted residual's expanded input
                  (expanded_channels x the stage's input map; layer_2's, 128 channels at
                  H/2 x W/2, for MobileViT-small), or a map upsampled to whole patches
    attention     ~4.4 x the largest set of attention matrices: patch_size**2 * heads
                  matrices of N x N per image, N the patches of a MobileViT stage's map

so attention (N grows with H * W, its matrices with N**2) dominates from about 512x512 up.
The estimate is within 7% of those measurements (and of xx-small's 281 MB at 512x512,
estimated 295). The available memory is
the least of MemAvailable, the address-space limit (RLIMIT_AS) left and the cgroup's limit left.
"""

from __future__ import annotations

import functools
import math
import resource
from dataclasses import dataclass

import numpy as np

from mobilevit_np.architecture import encoder_stages, expanded_channels
from mobilevit_np.config import MobileViTConfig

CONV_FACTOR = 6.0
ATTENTION_FACTOR = 4.4
GB = 1e9
UNCHECKED_BYTES = 64 * 1024 * 1024  # smaller passes skip reading /proc (it costs more than they risk)


def forward_bytes(config: MobileViTConfig, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Estimated peak bytes of a forward pass on pixel_values of `shape` (B, C, H, W)."""
    batch, _, height, width = shape
    conv, attention = _largest_elements(_Geometry.of(config), height, width)
    per_image = max(CONV_FACTOR * conv, ATTENTION_FACTOR * attention)
    return int(batch * np.dtype(dtype).itemsize * per_image)


@dataclass(frozen=True)
class _Geometry:
    """The config fields the estimate reads, hashable, so that repeated calls cost a cache lookup."""

    neck_hidden_sizes: tuple[int, ...]
    hidden_sizes: tuple[int, ...]
    expand_ratio: float
    patch_size: int
    num_attention_heads: int
    output_stride: int

    @classmethod
    def of(cls, config: MobileViTConfig) -> _Geometry:
        if config.model_type == "mobilevitv2":
            # MobileViTV2 has v1's stage plan with its own widths, and no N x N attention
            # matrices (separable attention): 0 heads leaves only the convolution term.
            from mobilevit_np.architecture_v2 import attention_widths, channel_widths

            widths = (*channel_widths(config), 0)  # no conv_1x1_exp
            return cls(
                widths, tuple(attention_widths(config)), config.expand_ratio, config.patch_size, 0, config.output_stride
            )
        return cls(
            tuple(config.neck_hidden_sizes),
            tuple(config.hidden_sizes),
            config.expand_ratio,
            config.patch_size,
            config.num_attention_heads,
            config.output_stride,
        )


@functools.lru_cache(maxsize=64)
def _largest_elements(config: _Geometry, height: int, width: int) -> tuple[int, int]:
    """Per image: (elements of the largest convolution map, elements of the largest stage's attention)."""
    h, w = math.ceil(height / 2), math.ceil(width / 2)  # after the stride-2 stem
    conv, attention = config.neck_hidden_sizes[0] * h * w, 0
    p = config.patch_size
    for stage in encoder_stages(config):
        conv = max(conv, expanded_channels(stage.in_channels, config.expand_ratio) * h * w)
        stride, _ = stage.downsample
        h, w = math.ceil(h / stride), math.ceil(w / stride)
        if stage.kind == "mobilevit":
            nh, nw = math.ceil(h / p), math.ceil(w / p)
            conv = max(conv, stage.hidden_size * nh * p * nw * p)
            attention = max(attention, p * p * config.num_attention_heads * (nh * nw) ** 2)
    return conv, attention


def available_bytes() -> int | None:
    """What this process may still allocate, by the tightest limit this system reports (None: unknown)."""
    limits = []
    meminfo = _read_fields("/proc/meminfo")
    if "MemAvailable" in meminfo:
        limits.append(meminfo["MemAvailable"])
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    status = _read_fields("/proc/self/status")
    if soft != resource.RLIM_INFINITY and "VmSize" in status:
        limits.append(soft - status["VmSize"])
    cgroup_max, cgroup_now = _read_text("/sys/fs/cgroup/memory.max"), _read_text("/sys/fs/cgroup/memory.current")
    if cgroup_max.isdigit() and cgroup_now.isdigit():
        limits.append(int(cgroup_max) - int(cgroup_now))
    return max(0, min(limits)) if limits else None


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return ""


def _read_fields(path: str) -> dict[str, int]:
    """The "Name:  1234 kB" lines of a /proc file, in bytes."""
    fields = {}
    for line in _read_text(path).splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def check_forward_memory(config: MobileViTConfig, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Raise MemoryError, before anything is allocated, when a forward pass cannot fit."""
    needed = forward_bytes(config, shape, dtype)
    if needed < UNCHECKED_BYTES:
        return
    available = available_bytes()
    if available is None or needed <= available:
        return
    batch, _, height, width = shape
    fit = int(available // max(needed // batch, 1))
    advice = (
        f"lower the batch size (about {fit} such images fit)"
        if fit >= 1
        else "even one image of this size does not fit: lower the image size (or the processor's crop_size)"
    )
    raise MemoryError(
        f"a forward pass on {batch} image(s) of {height}x{width} needs about {needed / GB:.1f} GB, but about "
        f"{available / GB:.1f} GB is available: {advice}"
    )
