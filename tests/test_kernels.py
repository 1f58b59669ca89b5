"""Stage 1's per-site sums: the fused CPU kernel and the PyTorch path equal a per-sample float64 sum."""

from __future__ import annotations

import os
import sys

import pytest
import torch

import critical_neurons.method
from critical_neurons.method import site_sums
from critical_neurons.method.site_sums import AbsDifferenceSums


def per_sample_sums(batches: list[torch.Tensor], clean: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(clean.shape, dtype=torch.float64)
    for batch in batches:
        for sample in batch:
            total += (sample.double() - clean.double()).abs()
    return total


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (7, 700), (2, 3000)])  # 3000 x 2: a block and a partial one
def test_sums_equal_a_per_sample_reference(fused, shape):
    generator = torch.Generator().manual_seed(0)
    clean = torch.randn(shape, generator=generator)
    batches = [torch.randn((size, *shape), generator=generator) * 3 for size in (1, 4, 0, 3)]
    batches.append(torch.randn((shape[1], 2, shape[0]), generator=generator).permute(1, 2, 0))  # not contiguous
    sums = AbsDifferenceSums(fused=fused)
    sums.set_clean("site", clean)
    for batch in batches:
        sums.add("site", batch)
    # float32 sums of 10 terms: within 10 roundings of the float64 sum
    torch.testing.assert_close(sums.sums["site"].double(), per_sample_sums(batches, clean), rtol=1e-6, atol=1e-6)


def test_fused_kernel_runs_on_cpu_float32_and_not_in_a_forked_child(monkeypatch):
    assert site_sums.can_fuse(torch.zeros(1, 2, 3)) and not site_sums.can_fuse(torch.zeros(1, 2, 3, dtype=torch.bfloat16))
    assert site_sums._fused_kernel() is not None
    monkeypatch.setattr(site_sums, "_first_use_pid", os.getpid() + 1)  # as if this process were forked after first use
    assert site_sums._fused_kernel() is None


def test_without_numba_the_pytorch_path_runs_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "critical_neurons.method.site_sums_numba", None)  # makes the import fail
    monkeypatch.delattr(critical_neurons.method, "site_sums_numba", raising=False)
    clean, batch = torch.zeros(2, 3), torch.ones(4, 2, 3)
    sums = AbsDifferenceSums()
    sums.set_clean("site", clean)
    sums.add("site", batch)
    sums.add("site", batch)
    assert sums.kernel is None and caplog.text.count("numba is not importable") == 1
    assert torch.equal(sums.sums["site"], torch.full((2, 3), 8.0))


def test_a_bfloat16_output_takes_the_pytorch_path():
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn(4, 9, generator=generator)
    batch = torch.randn(5, 4, 9, generator=generator).to(torch.bfloat16)
    sums = AbsDifferenceSums()
    sums.set_clean("site", clean)
    sums.add("site", batch)
    torch.testing.assert_close(sums.sums["site"].double(), per_sample_sums([batch.float()], clean), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_compiled_kernel_for_gpus_equals_a_per_sample_reference(dtype):
    """The CUDA path's op, compiled here by inductor's CPU backend: one graph for every site shape and batch size."""
    add = site_sums.compiled_add_abs_differences()
    generator = torch.Generator().manual_seed(1)
    for shape, sizes in (((3, 5), (7, 8, 8, 2)), ((11, 300), (4, 1, 3))):
        clean = torch.randn(shape, generator=generator)
        batches = [(torch.randn((size, *shape), generator=generator) * 3).to(dtype) for size in sizes]
        sums = torch.zeros(shape)
        for batch in batches:
            add(sums, batch, clean)
        # float32 sums of up to 25 terms: within 25 roundings of the float64 sum of the same (possibly bfloat16) inputs
        torch.testing.assert_close(sums.double(), per_sample_sums(batches, clean), rtol=5e-6, atol=1e-5)
