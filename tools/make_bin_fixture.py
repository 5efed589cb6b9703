"""Write tests/fixtures/bin/tiny.bin with torch.save, its expected values as tiny.safetensors, and expanded.bin.

The allowlist .bin reader (mobilevit_np/checkpoints/torch_pickle.py) is fuzzed from this file
(tests/test_fuzz_bin.py) and the hostile-input catalogue (tools/error_catalogue.py)
builds its broken .bin files by editing it, so neither needs torch. The tensors cover
what a state dict holds: float32 weights, a transposed view sharing a storage, a row
at an offset, float16, bfloat16, an int64 counter and an nn.Parameter. expanded.bin holds
one expanded tensor (stride 0: 12288 elements over a storage of 3), which the reader refuses
because materialising such views is how a tiny file asks for a giant allocation.

    python tools/make_bin_fixture.py      # needs torch (the parity extra); run once, commit the output
"""

from __future__ import annotations

import os

import torch
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "bin")


def state_dict() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 4, generator=generator)
    return {
        "layer.weight": weight,
        "layer.weight_t": weight.t(),  # strides (1, 4) into the same storage
        "layer.row": weight[1],  # storage offset 4
        "layer.bias": torch.nn.Parameter(torch.randn(3, generator=generator)),
        "half": torch.randn(2, 2, generator=generator).half(),
        "bf16": torch.randn(5, generator=generator).to(torch.bfloat16),
        "norm.num_batches_tracked": torch.tensor(7),
    }


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    state = state_dict()
    torch.save(state, os.path.join(OUT, "tiny.bin"))
    # bfloat16 widens to float32 exactly, as the reader does (NumPy has no bfloat16).
    expected = {k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()) for k, v in state.items()}
    expected = {k: v.contiguous() for k, v in expected.items()}
    save_file({k: v.numpy() for k, v in expected.items()}, os.path.join(OUT, "tiny.safetensors"))
    torch.save({"expanded": torch.arange(3.0).expand(4096, 3)}, os.path.join(OUT, "expanded.bin"))
    print(f"wrote {OUT}/tiny.bin, tiny.safetensors and expanded.bin (torch {torch.__version__})")


if __name__ == "__main__":
    main()
