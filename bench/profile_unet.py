"""Where a bf16 UNet step's time goes on the CPU, and what torch.compile does to it.

    python bench/profile_unet.py [--dtype bf16|fp32] [--size 256] [--compile freezing,freezing+cpp_wrapper,...]
                                 [--cache-dir DIR] [--runs 3] [--out FILE.json]

* The profile: one SD-1.5-sized UNet step (random weights, batch 2 = CFG, channels_last;
  ``eager`` torch, and ``packed`` as the engine runs it, its convolution weights packed
  once, ``engine/packed_weights.py``) under ``torch.profiler``, its self CPU time grouped into convolutions, matmuls
  (linear layers), attention (SDPA), normalisation (group/layer norm), element-wise
  ops and layout copies.
* ``--compile``: each variant compiled (inductor; ``freezing`` = weights as constants,
  oneDNN pre-packed, conv/linear + element-wise fusions), the time of its first call
  (the compile, cold or warm from ``--cache-dir``) and its step time interleaved with eager.

Used to decide the engine's compile settings (docs/performance.md); ``bench/run.py``
measures the chosen one.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import roofline
import sized_models
import timing

CATEGORIES = (
    ("attention", ("scaled_dot_product", "_flash_attention", "softmax", "baddbmm", "bmm")),
    ("convolution", ("convolution", "conv2d", "mkldnn_conv")),
    ("matmul", ("addmm", "linear", "aten::mm", "matmul", "mkldnn_linear")),
    ("normalisation", ("group_norm", "layer_norm", "native_group_norm", "native_layer_norm")),
    ("layout copies", ("copy_", "contiguous", "clone", "to_dense", "reorder", "_to_copy", "cat")),
    ("element-wise", ("add", "mul", "silu", "gelu", "sigmoid", "div", "sub", "chunk", "upsample", "where", "exp",
                      "sin", "cos", "neg", "pow", "rsqrt", "mean", "sum")),
)


def categorise(name: str) -> str:
    for category, needles in CATEGORIES:
        if any(needle in name for needle in needles):
            return category
    return "other"


def profile_step(step: Any) -> dict[str, Any]:
    """Self CPU time per category and the top ops of one call of ``step``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    by_category: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        by_op[event.key] += event.self_cpu_time_total / 1e3
        by_category[categorise(event.key)] += event.self_cpu_time_total / 1e3
    total = sum(by_category.values())
    return {
        "total_ms": round(total, 1),
        "share": {k: round(v / total, 3) for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])},
        "top_ops_ms": {k: round(v, 1) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])[:15]},
    }


def compile_options(variant: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for part in variant.split("+"):
        if part == "freezing":
            options["freezing"] = True
        elif part == "cpp_wrapper":
            options["cpp_wrapper"] = True
        elif part == "max-autotune":
            options["max_autotune"] = True
        elif part != "default":
            raise ValueError(f"unknown compile variant part {part!r}")
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--compile", default="", help="comma-separated variants: default, freezing, "
                        "freezing+cpp_wrapper, freezing+max-autotune")
    parser.add_argument("--cache-dir", help="TORCHINDUCTOR_CACHE_DIR (warm runs: the same folder again)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default). On a busy "
                        "machine 1 thread makes the per-CPU-second share meaningful: no thread waits for another")
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args(argv)

    import os

    if args.cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(args.cache_dir).resolve())
    import torch
    from diffusers import UNet2DConditionModel

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sized_models.SD15_UNET).eval()
    unet.to(dtype=dtype, memory_format=torch.channels_last)
    sample = torch.randn(2, 4, args.size // 8, args.size // 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    context = torch.randn(2, 77, 768, generator=torch.Generator().manual_seed(1)).to(dtype)
    timestep = torch.tensor([500])

    def step(module: Any) -> Any:
        with torch.no_grad():
            return module(sample, timestep, encoder_hidden_states=context).sample

    out: dict[str, Any] = {"dtype": args.dtype, "size": args.size, "threads": torch.get_num_threads(),
                           "load_average_start": timing.load_average()}
    flops = roofline.unet_flops(dict(unet.config), size=args.size)
    out["gflop"] = flops["gflop"]
    out["matmul_limit"] = roofline.matmul_rate(4096, dtype, runs=3)
    reference = step(unet).float()
    packed = copy.deepcopy(unet)  # as the engine runs it: convolution weights packed once (packed_weights.py)
    importlib.import_module(timing.import_engine().__name__ + ".packed_weights").pack([packed])
    out["packed_max_abs_diff_vs_eager"] = float((step(packed).float() - reference).abs().max())
    if not args.no_profile:
        for name, module in (("eager", unet), ("packed", packed)):
            step(module)
            out[f"{name}_profile"] = profile_step(lambda module=module: step(module))
            print(name, json.dumps(out[f"{name}_profile"], indent=1), flush=True)
    contenders: dict[str, Any] = {"eager": lambda: step(unet), "packed": lambda: step(packed)}
    out["compile"] = {}
    for variant in [v for v in args.compile.split(",") if v]:
        compiled = torch.compile(unet, options=compile_options(variant))
        start = time.perf_counter()
        result = step(compiled).float()
        seconds = time.perf_counter() - start
        out["compile"][variant] = {
            "first_call_s": round(seconds, 1),
            "max_abs_diff_vs_eager": float((result - reference).abs().max()),
        }
        print(f"{variant}: first call {seconds:.1f} s", flush=True)
        contenders[variant] = lambda compiled=compiled: step(compiled)
        if not args.no_profile:
            step(compiled)
            out["compile"][variant]["profile"] = profile_step(lambda compiled=compiled: step(compiled))
    out["output_max_abs"] = float(reference.abs().max())
    samples = timing.interleave(contenders, runs=args.runs, warmup=1)
    out["steps"] = {}
    for name, s in samples.items():
        summary = s.summary()
        summary["gflops"] = round(flops["gflop"] / s.median, 1)
        summary["share_of_matmul_limit"] = round(summary["gflops"] / out["matmul_limit"]["gflops"], 3)
        # The same share per CPU-second on both sides: less sensitive to other processes taking the cores.
        limit = out["matmul_limit"]
        if summary["cpu_share"] and limit.get("cpu_share"):
            summary["share_per_cpu_second"] = round(
                summary["share_of_matmul_limit"] * limit["cpu_share"] / summary["cpu_share"], 3
            )
        if name != "eager":
            summary["speedup_vs_eager"] = round(timing.paired_ratio(samples, "eager", name), 3)
        out["steps"][name] = summary
    out["load_average_end"] = timing.load_average()
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
