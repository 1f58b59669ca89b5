"""Stage 1's per-site work, ``sums += sum over the batch of |outputs - clean|``, as one pass over memory.

On CPU this work is memory-bound: eager PyTorch needs a subtraction, an absolute value and a batch
sum (three passes over the batch of site outputs, plus a temporary as large as the batch). The numba
kernel in :mod:`critical_neurons.method.site_sums_numba` reads each output value once: it walks blocks of a few
thousand values that stay in the L1 cache and runs the batch loop inside each block. On 2 CPU cores
it takes about 40% of the time of the three PyTorch kernels (see the README's Performance section).
On CUDA the same formula is compiled by torch.compile (dynamic shapes: one compilation for every site
and batch size) into one Triton kernel: each output value is read once, with no float32 temporary as
large as the batch. Elsewhere (a CPU tensor
that is not float32) the PyTorch kernels run.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

_first_use_pid: int | None = None


def _fused_kernel():
    """The kernel (compiled or loaded from numba's cache on first use); None without numba, or in a
    process forked after it ran (numba's GNU OpenMP thread pool cannot be used there)."""
    global _first_use_pid
    try:
        from critical_neurons.method import site_sums_numba
    except ImportError as error:
        logger.warning("numba is not importable (%s): Stage 1 sums with PyTorch kernels, about 2x slower on CPU; pip install -r requirements.txt", error)
        return None
    if _first_use_pid is None:
        _first_use_pid = os.getpid()
    if _first_use_pid != os.getpid():
        return None
    site_sums_numba.set_threads(torch.get_num_threads())
    return site_sums_numba.add_abs_differences


def can_fuse(outputs: torch.Tensor) -> bool:
    return outputs.device.type == "cpu" and outputs.dtype == torch.float32


def add_abs_differences(sums: torch.Tensor, outputs: torch.Tensor, clean: torch.Tensor) -> None:
    """``sums += sum over the batch of |outputs - clean|`` in float32, as a formula for torch.compile to fuse."""
    sums.add_((outputs.float() - clean).abs().sum(0))


_compiled = None


def compiled_add_abs_differences():
    """:func:`add_abs_differences` compiled once per process, for every site shape and batch size
    (dynamic shapes): one kernel reading each output value once."""
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(add_abs_differences, dynamic=True, fullgraph=True)
    return _compiled


class AbsDifferenceSums:
    """Running float32 sums of ``|outputs - clean|`` per site, each on its site's device.

    ``set_clean`` keeps a site's (seq, channels) clean output; ``add`` adds a (batch, seq, channels)
    batch of its outputs. On CPU in float32 that is one numba kernel, on CUDA one compiled kernel;
    otherwise a subtraction into one reused float32 buffer per device (a fresh temporary per site and
    pass would cost a page-faulting allocation each time), an absolute value and one batch sum. All
    add float32 differences.
    """

    def __init__(self, fused: bool = True):
        self.fused = fused  # False: always the PyTorch kernels (the eager formula)
        self.kernel = None  # looked up on the first CPU float32 batch: a GPU run never imports numba
        self.clean: dict[str, torch.Tensor] = {}
        self.sums: dict[str, torch.Tensor] = {}
        self._arrays: dict[str, tuple] = {}  # the fused kernel's numpy views of clean and sums, per site
        self._buffers: dict[torch.device, torch.Tensor] = {}

    def set_clean(self, name: str, clean: torch.Tensor) -> None:
        self.clean[name] = clean.to(torch.float32, copy=True).contiguous()  # never a view of a batch
        self.sums[name] = torch.zeros_like(self.clean[name])
        if self.clean[name].device.type == "cpu":
            self._arrays[name] = (self.clean[name].view(-1).numpy(), self.sums[name].view(-1).numpy())

    def add(self, name: str, outputs: torch.Tensor) -> None:
        if outputs.shape[0] == 0:
            return
        if self.fused and can_fuse(outputs):
            if self.kernel is None:
                self.kernel = _fused_kernel()
                self.fused = self.kernel is not None  # look up (and warn) once
            if self.fused:
                clean, sums = self._arrays[name]
                self.kernel(outputs.detach().reshape(outputs.shape[0], -1).contiguous().numpy(), clean, sums)
                return
        if self.fused and outputs.device.type == "cuda":
            compiled_add_abs_differences()(self.sums[name], outputs, self.clean[name])
            return
        buffer = self._buffers.get(outputs.device)
        if buffer is None or buffer.numel() < outputs.numel():
            buffer = self._buffers[outputs.device] = torch.empty(outputs.numel(), dtype=torch.float32, device=outputs.device)
        differences = torch.sub(outputs, self.clean[name], out=buffer[: outputs.numel()].view(outputs.shape)).abs_()
        self.sums[name].add_(differences.sum(0))

    def free_clean(self) -> None:
        self.clean.clear()
        self._arrays.clear()
