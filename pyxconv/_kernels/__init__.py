"""Compiled kernels of pyxconv.

Everything here works on already-validated, C-contiguous arrays: shapes,
dtypes and sizes are checked in :mod:`pyxconv.functional` before a kernel runs.
Do not call these functions directly with unchecked input.
"""
