"""Run tests as older x86 CPUs run them: oneDNN, ATen and MKL held below this CPU's instruction set.

Float rounding, the kernels oneDNN picks and Precision Auto all depend on the CPU (AMX, AVX-512 BF16,
plain AVX-512, AVX2), so a tolerance measured on one CPU can fail on another. What each variable changes:

* ``ONEDNN_MAX_CPU_ISA``: oneDNN's convolution and matmul kernels. Below ``AVX512_CORE_BF16`` oneDNN emulates
  bf16, and Precision Auto follows (``engine.devices.cpu_features``); at ``AVX2`` it refuses bf16 weights
  altogether, as on an AVX2-only CPU (``engine.packed_weights.onednn_runs_bf16``).
* ``ATEN_CPU_CAPABILITY``: ATen's own vectorised kernels (element-wise, norms, softmax, attention).
* ``MKL_ENABLE_INSTRUCTIONS``: MKL's fp32 sgemm.

cpuid itself still reports this CPU. A kind is run only where this CPU has what the kind takes away (an
AVX2-only machine runs none: its plain run is that kind); AMX and ARM cannot be emulated on a CPU without them.

    python tools/test_as_cpus.py [pytest arguments]      (default: tests/engine)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# name: (environment, the CPU feature the kind takes away: run only where this CPU has it)
CPU_KINDS: dict[str, tuple[dict[str, str], str]] = {
    "AVX-512 BF16 without AMX": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "amx_bf16"),
    "AVX-512 without bf16": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "avx512_bf16"),
    "AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
             "avx512_f"),
}


def kinds_below_this_cpu(features: dict[str, bool]) -> list[str]:
    return [name for name, (_, taken_away) in CPU_KINDS.items() if features.get(taken_away, False)]


def main(argv: list[str]) -> int:
    import torch

    features = {key: bool(value) for key, value in torch.cpu.get_capabilities().items() if isinstance(value, bool)}
    kinds = kinds_below_this_cpu(features)
    print(f"this CPU: {torch.cpu.get_capabilities().get('cpu_name', '?')}; runs as: {', '.join(kinds) or 'none'}",
          flush=True)
    failed = []
    for name in kinds:
        environment, _ = CPU_KINDS[name]
        print(f"\n=== tests as {name}: {' '.join(f'{k}={v}' for k, v in environment.items())}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", *(argv or ["tests/engine"])], cwd=REPO_ROOT,
                              env={**os.environ, **environment}, check=False)
        print(f"=== {name}: exit {done.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed as: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
