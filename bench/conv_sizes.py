"""Why the UNet step stays far below the matmul rate on a CPU: the 3x3 convolutions per latent size.

    python bench/conv_sizes.py [--runs 20] [--out FILE.json]

Not part of ``make bench``: the evidence behind docs/performance.md. Each row is one of
the SD-1.5 UNet's 3x3 convolutions (channels, latent side) with batch 2 (CFG),
channels_last as the engine runs it, in bf16 (where the CPU has it natively) and fp32:

* ``eager``   - plain torch (oneDNN, weights reordered at every call);
* ``packed``  - what a Generate runs: the weights packed once (``engine/packed_weights.py``);
* ``frozen``  - ``torch.compile`` with weight freezing of the lone convolution;
* ``gemm``    - the same convolution as ``unfold`` + one matrix product.

At 256² the latents are 32² and the deepest levels 8² and 4²: few output pixels per
weight, so a convolution there streams its weights more than it computes.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import timing

CASES = ((320, 32), (640, 16), (1280, 8), (1280, 4))  # (channels, latent side) at 256²; 512² doubles each side


def _seconds(fn: Any, runs: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


def measure(runs: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    packed_weights = importlib.import_module(timing.import_engine().__name__ + ".packed_weights")
    dtypes = [torch.float32] + ([torch.bfloat16] if timing.bf16_native() else [])
    rows = []
    for dtype in dtypes:
        for channels, side in CASES:
            torch.manual_seed(0)
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(dtype)
            conv = conv.to(memory_format=torch.channels_last)
            x = torch.randn(2, channels, side, side).to(dtype).to(memory_format=torch.channels_last)
            matrix = conv.weight.reshape(channels, -1).t().contiguous()
            frozen = torch.compile(conv, options={"freezing": True})
            packed = copy.deepcopy(conv)
            packed_weights.pack([packed])

            def gemm() -> Any:
                columns = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, channels * 9)
                return torch.addmm(conv.bias, columns, matrix)

            gflop = 2 * 2 * channels * side * side * channels * 9 / 1e9
            with torch.no_grad():
                seconds = {"eager": _seconds(lambda: conv(x), runs), "packed": _seconds(lambda: packed(x), runs),
                           "frozen": _seconds(lambda: frozen(x), runs),
                           "gemm": _seconds(gemm, runs)}
            rows.append({"dtype": str(dtype).removeprefix("torch."), "channels": channels, "side": side,
                         "gflops": {k: round(gflop / v, 1) for k, v in seconds.items()}})
    return {"threads": torch.get_num_threads(), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    result = measure(args.runs)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
