"""colorlib.system.malloc (glibc malloc settings) and the channels_last layout fixes."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorlib.models.networks import ModelConfig, build_discriminator, build_generator
from colorlib.models.pix2pix import pair
from colorlib.system import malloc
from colorlib.system.device import DevicePolicy

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
HUGE_PAGES_ALWAYS = THP.is_file() and "[always]" in THP.read_text()


@pytest.mark.skipif(not GLIBC, reason="the settings exist only for glibc's malloc")
def test_malloc_settings_take_effect_on_glibc(monkeypatch):
    monkeypatch.delenv("COLORLIB_KEEP_FREED_MEMORY", raising=False)
    assert malloc._apply() is True


@pytest.mark.parametrize("value", ["0", "false", "no"])
def test_malloc_settings_can_be_switched_off(monkeypatch, value):
    monkeypatch.setenv("COLORLIB_KEEP_FREED_MEMORY", value)
    assert malloc._apply() is False


@pytest.mark.skipif(not GLIBC, reason="the settings exist only for glibc's malloc")
@pytest.mark.skipif(HUGE_PAGES_ALWAYS, reason="2 MB pages: too few page faults to count")
@pytest.mark.slow
def test_freed_large_blocks_stay_in_the_process():
    """With the settings, freed 64 MB blocks are reused instead of faulted in afresh.

    Runs in fresh interpreters: glibc's thresholds are process-wide and this
    test process may already have them. The first allocations let malloc
    reach its steady state (aligned blocks leave gaps the heap grows past).
    """
    code = """
import resource, sys
import torch
from colorlib.system.malloc import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(12):
    torch.ones(2**24)  # 64 MB: allocate, touch, free
before = faults()
for _ in range(5):
    torch.ones(2**24)
print(faults() - before)
"""
    pages = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                             check=True, env={**os.environ, "COLORLIB_KEEP_FREED_MEMORY": "1"})
        pages[mode] = int(out.stdout.split()[-1])
    # Without the settings every block is 16,384 fresh 4 kB pages.
    assert pages["off"] > 5 * 15_000, pages
    assert pages["on"] < 1_000, pages


def _last_block_input(net: torch.nn.Module,
                      x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(what the U-Net's full-resolution ResBlock receives after the merge, the output)."""
    from fastai.layers import MergeLayer

    seen = []
    layers = list(net.layers)
    merge = next(i for i, layer in enumerate(layers) if isinstance(layer, MergeLayer))
    handle = layers[merge + 1].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            out = net(x)
    finally:
        handle.remove()
    return seen[0], out


@pytest.mark.slow
def test_res_unet_merge_keeps_channels_last_and_values():
    torch.manual_seed(0)
    net = build_generator(ModelConfig(arch="resnet18_unet", size=64), None).eval()
    x = torch.randn(2, 1, 64, 64)
    merged_nchw, out_nchw = _last_block_input(net, x)
    assert merged_nchw.is_contiguous()  # NCHW stays NCHW
    net = net.to(memory_format=torch.channels_last)
    merged, out = _last_block_input(net, x.contiguous(memory_format=torch.channels_last))
    assert merged.shape[1] == 97
    assert merged.is_contiguous(memory_format=torch.channels_last) and not merged.is_contiguous()
    assert torch.allclose(out, out_nchw, atol=1e-4)


def test_discriminator_input_is_channels_last_when_the_networks_are():
    policy = DevicePolicy.for_training("cpu", "resnet18_unet")  # the gan stage on a CPU
    assert policy.channels_last
    disc = policy.place(build_discriminator(ModelConfig(arch="resnet18_unet", size=32)))
    assert next(disc.parameters()).is_contiguous(memory_format=torch.channels_last)
    L = torch.randn(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    ab = torch.randn(2, 2, 32, 32).contiguous(memory_format=torch.channels_last)
    both = pair(L, ab)
    assert both.is_contiguous(memory_format=torch.channels_last) and not both.is_contiguous()
    assert torch.equal(both, torch.cat([L, ab], 1))
    assert pair(L.contiguous(), ab.contiguous()).is_contiguous()  # NCHW stays NCHW
