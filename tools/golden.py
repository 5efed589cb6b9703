"""The golden fixtures' format: where they live, reading them back and comparing against them.

tools/make_fixtures.py writes them, tests/test_golden.py reads them (tools/ is on the tests' sys.path).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilevit_np import load_config
from mobilevit_np.modeling_v2 import model_class
from mobilevit_np.random_weights import checksum, random_pixel_values, random_state_dict

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "golden"
FORMAT_VERSION = 1
# max |ours - reference| / max |reference| allowed, per dtype. A correct float32 port lands near 1e-6.
TOLERANCE = {"float32": 2e-5, "float64": 1e-9}


@dataclass
class Case:
    name: str
    folder: Path
    meta: dict
    golden: dict

    @classmethod
    def load(cls, name: str) -> Case:
        folder = GOLDEN / name
        meta = json.loads((folder / "meta.json").read_text())
        if meta["format_version"] != FORMAT_VERSION:
            raise AssertionError(f"{name}: fixture format {meta['format_version']}, tests read {FORMAT_VERSION}")
        with np.load(folder / "golden.npz") as npz:
            golden = dict(npz)
        return cls(name, folder, meta, golden)

    def pixel_values(self) -> np.ndarray:
        x = random_pixel_values(tuple(self.meta["input_shape"]), self.meta["input_seed"])
        assert checksum({"pixel_values": x}) == self.meta["input_sha256"], "seeded input drifted"
        return x

    @property
    def model_type(self) -> str:
        return load_config(self.folder).model_type

    def model(self, dtype, **kwargs):
        config = load_config(self.folder)
        cls = model_class(config, self.meta["head"])
        if self.meta["weights_in_repo"]:
            return cls.from_pretrained(self.folder, dtype=dtype, **kwargs)
        state_dict = random_state_dict(config, self.meta["head"], self.meta["weights_seed"])
        assert checksum(state_dict) == self.meta["weights_sha256"], "seeded weights drifted from the fixture"
        return cls.from_config(config, state_dict, dtype=dtype, **kwargs)

    def output_names(self) -> list[str]:
        return sorted(k[: -len("/shape")] for k in self.golden if k.endswith("/shape"))

    def compare(self, name: str, ours: np.ndarray, dtype: str) -> float:
        """Relative error of `ours` against the stored reference output `name`; raises with a side-by-side view."""
        shape = tuple(self.golden[f"{name}/shape"])
        assert ours.shape == shape, f"{self.name} {name}: shape {ours.shape}, reference {shape}"
        index = self.golden.get(f"{name}/index")
        mine = ours.ravel() if index is None else ours.ravel()[index]
        ref = self.golden[f"{dtype}/{name}/values"]
        error = float(np.abs(mine - ref).max() / self.golden[f"{dtype}/{name}/absmax"])
        if not error <= TOLERANCE[dtype]:
            worst = int(np.abs(mine - ref).argmax())
            raise AssertionError(
                f"{self.name} {dtype} {name}: relative error {error:.2e} > {TOLERANCE[dtype]:.0e}\n"
                f"  first values ours: {mine[:5]}\n  first values ref:  {ref[:5]}\n"
                f"  worst at sample {worst}: ours {mine[worst]!r} ref {ref[worst]!r}"
            )
        return error


def case_names() -> list[str]:
    return sorted(p.name for p in GOLDEN.iterdir() if (p / "meta.json").exists())
