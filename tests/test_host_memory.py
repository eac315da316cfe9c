"""The allocator setting of denoise_bench.host_memory: freed CPU tensors' pages are reused, not faulted in again.

Each case runs in a fresh interpreter, since malloc's options are process-wide and one-way.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from denoise_bench.host_memory import OPT_OUT_VARIABLE

# Training steps of a small convolution whose hidden activations (4 x 64 x 192 x 192 floats, 36 MiB) lie
# above glibc's largest mmap threshold (32 MiB), as those of a B2U step or a DIP fit do: the page faults
# of each step after the first three, and the peak resident memory.
PROBE = """
import json, resource, torch
from denoise_bench.host_memory import keep_freed_memory
state = keep_freed_memory()
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 32, 3, padding=1))
x = torch.rand(4, 32, 192, 192)
faults = []
for step in range(7):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x).square().mean().backward()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"state": state, "faults": faults[3:], "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
HIDDEN_PAGES = 4 * 64 * 192 * 192 * 4 // 4096


def probe(opt_out: bool) -> dict:
    env = {key: value for key, value in os.environ.items() if key != OPT_OUT_VARIABLE}
    if opt_out:
        env[OPT_OUT_VARIABLE] = "0"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_kept_memory_is_reused_without_faulting_it_in_again():
    kept, system = probe(opt_out=False), probe(opt_out=True)
    assert (kept["state"], system["state"]) == ("kept", "system")
    # glibc's default maps the hidden activations afresh at most steps (it can reuse a mapping now and
    # then): over the four steps, more faults than the pages of one activation (one per 4 KiB page);
    # kept, the steps reuse the pages they touched before.
    assert sum(system["faults"]) > HIDDEN_PAGES
    assert sum(kept["faults"]) < sum(system["faults"]) // 4
    # ... without holding on to more than the steps need.
    assert kept["peak_kib"] < 1.5 * system["peak_kib"]
