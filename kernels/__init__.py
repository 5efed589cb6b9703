"""Numba-jitted kernels for the fast path (installed as mobilevit_np.kernels)."""
