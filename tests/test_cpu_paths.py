"""One short training agrees across torch's CPU kernel paths, within the fixture tolerances.

The same torch picks other kernels on other CPUs (AVX2, AVX-512, AMX), and they round
differently: that is why ``tests/test_legacy_checkpoint.py`` compares the floats of its
fixture, written on another machine, with stated tolerances instead of bitwise. Here
both sides of that comparison run on this machine: the legacy step-2 checkpoint is
continued to step 4 in two subprocesses, one forced onto the AVX2 kernels
(``ATEN_CPU_CAPABILITY=avx2``) and one on the machine's own choice, and the two must
agree within the same tolerances. If they did not, the fixture test would fail on some
user's CPU.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_legacy_checkpoint import (ADAM_REL, NETS, OPTIMISERS, STEP2, WEIGHT_MOVES,
                                    assert_adam_continues, assert_weights_continue, compare)

from colorlib.training.checkpoint import load_checkpoint

TESTS = Path(__file__).resolve().parent
CHILD = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from pathlib import Path
from robust_helpers import make_training_photos
from colorlib.data.sources import DataConfig
from test_legacy_checkpoint import STEP2, continue_from
photos = make_training_photos(Path({work!r}) / "photos", n=10, side=40)
data = DataConfig(source=str(photos), size=64, batch_size=4, seed=7)
state = continue_from(STEP2, data)
torch.save(state, {out!r})
print(json.dumps({{"capability": torch.backends.cpu.get_cpu_capability()}}))
"""


def _continue_in_subprocess(tmp_path: Path, name: str, capability: str | None) -> tuple[str, dict]:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    env["OMP_NUM_THREADS"] = "1"
    work, out = tmp_path / name, tmp_path / f"{name}.pt"
    code = CHILD.format(tests=str(TESTS), work=str(work), out=str(out))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout.strip().splitlines()[-1])
    return said["capability"], torch.load(out, weights_only=False)


@pytest.mark.slow
def test_avx2_kernels_and_this_machines_kernels_agree_within_the_fixture_tolerance(tmp_path):
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("ATEN_CPU_CAPABILITY=avx2 exists on x86-64 only")
    # the machine's own choice, asked in a child without ATEN_CPU_CAPABILITY: this process
    # may itself run under a forced path (the suite run once per path, issue 18)
    native_said, ours = _continue_in_subprocess(tmp_path, "native", None)
    if native_said == "DEFAULT":
        pytest.skip("this CPU has no AVX2: torch has only its default kernels here")
    avx2_said, avx2 = _continue_in_subprocess(tmp_path, "avx2", "avx2")
    assert avx2_said == "AVX2"
    assert (ours["step"], avx2["step"]) == (4, 4)
    start = load_checkpoint(STEP2)
    assert_weights_continue(ours, start, avx2)  # WEIGHT_MOVES of how far the steps moved them
    assert_adam_continues(ours, avx2)  # ADAM_REL of each moment's largest value
    skip = (*NETS, *OPTIMISERS)
    compare({k: v for k, v in ours.items() if k not in skip},
            {k: v for k, v in avx2.items() if k not in skip}, exact=False)
    assert WEIGHT_MOVES <= 3.0 and ADAM_REL <= 1e-3  # the tolerances the fixture test uses
