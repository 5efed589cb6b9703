"""How the engine's kernels are compiled and launched (no arithmetic here).

- jit: the decorator every kernel uses (cached, FASTMATH, a serial and a parallel build);
- threads: which build a launch uses (threads, fork, thread-safety of numba's threading layer);
- jobs: how a parallel kernel shares its jobs among the threads (own share first, then stealing);
- cache: a corrupt numba cache file becomes a recompile with one warning, not an error every run.
"""
