"""The numba kernel behind :class:`critical_neurons.method.site_sums.AbsDifferenceSums` (imported on first use)."""

from __future__ import annotations

import os

import numba
import numpy as np

BLOCK = 2048  # float32 values per block: the block's sums, clean values and one row fit in L1


def _jit(function):
    """Parallel, and cached on disk where numba finds a writable folder (else compiled once per process)."""
    try:
        return numba.njit(parallel=True, cache=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(parallel=True)(function)


@_jit
def add_abs_differences(outputs: np.ndarray, clean: np.ndarray, sums: np.ndarray) -> None:
    """``sums += sum over rows of |outputs[row] - clean|`` for (rows, n) outputs, reading each value once."""
    num_blocks = (clean.shape[0] + BLOCK - 1) // BLOCK
    for block in numba.prange(num_blocks):
        start = block * BLOCK
        stop = min(clean.shape[0], start + BLOCK)
        block_sums = sums[start:stop].copy()
        block_clean = clean[start:stop]
        for row in range(outputs.shape[0]):  # samples in order, as one add per sample would
            block_outputs = outputs[row, start:stop]
            for index in range(stop - start):
                block_sums[index] += abs(block_outputs[index] - block_clean[index])
        sums[start:stop] = block_sums


def set_threads(count: int) -> None:
    """Use as many threads as PyTorch does (numba's own default is every core)."""
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))


def _start_passive_pool() -> None:
    """Start numba's thread pool with OMP_WAIT_POLICY=passive, for its OpenMP runtime only.

    numba's OpenMP layer loads the system's libgomp, a second runtime beside PyTorch's. Its threads
    would spin after every kernel while PyTorch's threads run the next layer, taking a core from
    them; passive threads sleep at once. The runtime reads the variable when it loads, so it is set
    only around the first (tiny) call and PyTorch's runtime, loaded earlier, never sees it.
    """
    saved = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        add_abs_differences(np.zeros((1, 1), np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32))
    finally:
        if saved is None:
            del os.environ["OMP_WAIT_POLICY"]
        else:
            os.environ["OMP_WAIT_POLICY"] = saved


_start_passive_pool()
