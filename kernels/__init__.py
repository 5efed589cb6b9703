"""The fast engine (installed as mobilevit_np.kernels): MobileViT as blocked-layout Numba kernels.

engine.py builds it from a model's parameters; docs/fast_path.md explains how it works and
holds the twin index (each kernel, the NumPy reference function it stands for, its test).
Every public kernel's docstring ends with a "Twin:" line naming that function.
"""
