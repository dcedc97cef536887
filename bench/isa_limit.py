"""The fp32 UNet step on a CPU limited to an older instruction set (AVX2), emulated on this one.

    python bench/isa_limit.py --isa avx2 --out FILE.json [--runs 3] [--cache DIR]

The artists' other kind of machine has AVX2 and no native bf16, so it runs fp32. On a
CPU with more, torch can be held to AVX2 in a fresh process: ``ATEN_CPU_CAPABILITY``
(ATen's kernels and inductor's generated C++), ``ONEDNN_MAX_CPU_ISA`` (convolutions
and oneDNN matmuls) and ``MKL_ENABLE_INSTRUCTIONS`` (MKL's sgemm), all set before torch
is imported. The code that runs is then the AVX2 code; the cores, caches and clocks
are still this machine's, so only shares of the matmul rate *measured under the same
limit* are comparable with a real AVX2 machine, not the GFLOP/s themselves.

Measured, interleaved: a 4096² sgemm (the limit; each share is paired per round), one
SD-1.5-sized UNet step at 256² with CFG in fp32 channels_last: ``packed`` (the engine's
default there: eager with the convolution weights packed once, ``engine/packed_weights.py``),
``eager`` (torch's own convolutions, which reorder the weights at every call) and
``compiled`` with inductor + weight freezing (Compile the Model). Run by ``bench/run.py`` as the section
``avx2`` (skipped on a CPU without AVX-512: there section 2 measures AVX2 directly).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LIMITS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def environment(isa: str) -> dict[str, str]:
    """The environment of a child process held to ``isa``."""
    return {**os.environ, **LIMITS[isa]}


def measure(runs: int, cache: Path) -> dict[str, Any]:
    import torch

    import roofline  # bench/ is this script's folder: on sys.path
    import sized_models
    import timing

    engine_api = timing.import_engine()
    compiling = importlib.import_module(engine_api.__name__ + ".compiling")
    packed_weights = importlib.import_module(engine_api.__name__ + ".packed_weights")
    out: dict[str, Any] = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                           "limits": {k: os.environ.get(k) for k in LIMITS["avx2"]}}
    with tempfile.TemporaryDirectory(prefix="lt_isa_") as scratch:
        unet = sized_models.sd15_components(Path(scratch))["unet"].to(memory_format=torch.channels_last)
    flops = roofline.unet_flops(dict(unet.config))
    config = unet.config
    sample = torch.randn(2, config.in_channels, 32, 32, generator=torch.Generator().manual_seed(0))
    context = torch.randn(2, roofline.TOKENS, config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    timestep = torch.tensor([500])

    def step(module: Any) -> Any:
        with torch.no_grad():
            return module(sample, timestep, encoder_hidden_states=context).sample

    reference = step(unet)
    packed = copy.deepcopy(unet)
    out["packed_layers"] = packed_weights.pack([packed])
    out["packed_max_abs_diff"] = float((step(packed) - reference).abs().max())
    compiling.use_cache_folder(cache)
    compiled = compiling.compile_module(unet, torch.device("cpu"))
    start = time.perf_counter()
    first = step(compiled)  # compiles (or loads from the cache)
    out["compile_s"] = round(time.perf_counter() - start, 1)
    out["compiled_max_abs_diff"] = float((first - reference).abs().max())
    out["output_max_abs"] = float(reference.abs().max())
    sgemm = roofline.Matmul(torch.float32)
    samples = timing.interleave({"packed": lambda: step(packed), "eager": lambda: step(unet),
                                 "compiled": lambda: step(compiled), "sgemm": sgemm}, runs=runs, warmup=1)
    out["sgemm"] = sgemm.rate(samples["sgemm"])
    out["gflop"] = flops["gflop"]
    out["variants"] = {}
    for name, sample_set in samples.items():
        if name == "sgemm":
            continue
        summary = sample_set.summary()
        summary["gflops"] = round(flops["gflop"] / sample_set.median, 1)
        summary["share_of_sgemm"] = round(roofline.paired_share(samples, name, flops["gflop"], "sgemm",
                                                                sgemm.gflop), 2)
        out["variants"][name] = summary
    out["compiled_over_eager"] = round(timing.paired_ratio(samples, "compiled", "eager"), 3)
    out["packed_over_eager"] = round(timing.paired_ratio(samples, "packed", "eager"), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", choices=sorted(LIMITS), default="avx2")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", help="inductor's cache folder (default: a new temp folder: a cold compile)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child:  # the limits must be in place before torch is imported: a fresh process
        import subprocess

        command = [sys.executable, __file__, "--child", "--isa", args.isa, "--out", args.out, "--runs", str(args.runs)]
        with tempfile.TemporaryDirectory(prefix="lt_isa_cache_") as cold:
            command += ["--cache", args.cache or cold]
            return subprocess.run(command, env=environment(args.isa), check=False).returncode
    result = measure(args.runs, Path(args.cache))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
