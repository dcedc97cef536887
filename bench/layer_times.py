"""Where one UNet step's time goes: each convolution, linear layer and attention call replayed alone.

One forward records every ``nn.Conv2d`` and ``nn.Linear`` call (its module and input) and
every ``F.scaled_dot_product_attention`` call (its query, key and value). Each round then
runs, interleaved: the 4096² matmul in the step's precision (the limit), the whole step, and
every recorded call again on its own input, timed one by one. So the step splits into

* the time its compute kernels take alone, grouped by kind and latent size, each group's
  GFLOP/s as a share of the matmul in the same round: how close oneDNN's kernels for
  *these* shapes come to the matmul limit, i.e. the most any fusion or scheduling of the
  step could reach with them;
* the rest (the step minus its kernels alone): group and layer norms, element-wise ops,
  copies and Python between the calls.

The replays run on warm caches with the same input, so "alone" is a best case for the kernels.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import roofline
import timing

BATCH = 2  # CFG


def _where(tokens: int) -> str:
    """Latent side of a layer from its tokens per image (32² ... 4² at 256²), or what else it is."""
    side = math.isqrt(tokens)
    if side * side == tokens and side > 1:
        return f"{side}²"
    return "text" if tokens == roofline.TOKENS else "embeddings"


class _Call:
    """One recorded kernel call: its group, FLOPs and a closure that runs it again."""

    def __init__(self, kind: str, where: str, flop: float, run: Callable[[], Any]) -> None:
        self.group = (kind, where)
        self.flop = flop
        self.run = run


def _conv(module: Any, x: Any) -> _Call:
    out_h = (x.shape[2] + 2 * module.padding[0] - module.kernel_size[0]) // module.stride[0] + 1
    out_w = (x.shape[3] + 2 * module.padding[1] - module.kernel_size[1]) // module.stride[1] + 1
    flop = 2 * x.shape[0] * out_h * out_w * module.out_channels * (x.shape[1] // module.groups) * math.prod(
        module.kernel_size)
    kind = f"{module.kernel_size[0]}x{module.kernel_size[1]} convolution"
    return _Call(kind, f"{x.shape[2]}²", flop, lambda: module(x))


def _linear(module: Any, x: Any) -> _Call:
    rows = x.numel() // x.shape[-1]
    where = _where(rows // BATCH) if x.dim() > 2 else "embeddings"
    return _Call("linear", where, 2 * rows * module.in_features * module.out_features, lambda: module(x))


def record(unet: Any, step: Callable[[], Any]) -> list[_Call]:
    """Every convolution, linear layer and attention call of one ``step()`` of ``unet``, in call order."""
    import torch
    import torch.nn.functional as F

    calls: list[_Call] = []

    def hook(module: Any, args: tuple[Any, ...], output: Any) -> None:
        x = args[0].detach().clone()  # the next layer may write into its input's memory
        calls.append(_conv(module, x) if isinstance(module, torch.nn.Conv2d) else _linear(module, x))

    attention = F.scaled_dot_product_attention

    def recording_attention(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        q, k, v = (t.detach().clone() for t in (query, key, value))
        flop = 4 * math.prod(q.shape[:-1]) * k.shape[-2] * q.shape[-1]  # QK^T and (softmax)V
        kind = "self-attention" if k.shape[-2] == q.shape[-2] else "cross-attention"
        calls.append(_Call(kind, _where(q.shape[-2]), flop,
                           lambda: attention(q, k, v, *args, **kwargs)))
        return attention(query, key, value, *args, **kwargs)

    handles = [m.register_forward_hook(hook) for m in unet.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    F.scaled_dot_product_attention = recording_attention  # diffusers' processors call it through ``F.``
    try:
        step()
    finally:
        F.scaled_dot_product_attention = attention
        for handle in handles:
            handle.remove()
    return calls


def measure(unet: Any, step: Callable[[], Any], *, step_gflop: float, runs: int) -> dict[str, Any]:
    """The step and its kernels alone, interleaved with the matmul limit in ``unet``'s precision."""
    import torch

    calls = record(unet, step)
    matmul = roofline.Matmul(next(unet.parameters()).dtype)
    kernel_times: list[dict[tuple[str, str], float]] = []

    def kernels_alone() -> None:
        totals: dict[tuple[str, str], float] = defaultdict(float)
        for call in calls:
            start = time.perf_counter()
            call.run()
            totals[call.group] += time.perf_counter() - start
        kernel_times.append(totals)

    with torch.no_grad():
        samples = timing.interleave({"matmul": matmul, "step": step, "kernels alone": kernels_alone},
                                    runs=runs, warmup=1)
    kernel_times = kernel_times[1:]  # the warm-up round's
    matmul_times = samples["matmul"].times
    flops: dict[tuple[str, str], float] = defaultdict(float)
    for call in calls:
        flops[call.group] += call.flop

    def share(gflop: float, times: list[float]) -> float:
        """Paired per round, as ``roofline.paired_share``."""
        return round(statistics.median(gflop / t / (matmul.gflop / m) for t, m in zip(times, matmul_times)), 3)

    groups = []
    for group, flop in sorted(flops.items(), key=lambda item: -statistics.median(r[item[0]] for r in kernel_times)):
        times = [r[group] for r in kernel_times]
        groups.append({"kind": group[0], "where": group[1], "calls": sum(c.group == group for c in calls),
                       "gflop": round(flop / 1e9, 2), "seconds": round(statistics.median(times), 4),
                       "gflops": round(flop / 1e9 / statistics.median(times), 1),
                       "share_of_matmul": share(flop / 1e9, times)})
    kernels_gflop = sum(flops.values()) / 1e9
    step_times = samples["step"].times
    kernel_totals = [sum(r.values()) for r in kernel_times]
    return {
        "dtype": matmul.dtype,
        "matmul": matmul.rate(samples["matmul"]),
        "step": {**samples["step"].summary(), "gflop": step_gflop,
                 "share_of_matmul": share(step_gflop, step_times)},
        "kernels_alone": {"seconds": round(statistics.median(kernel_totals), 4), "gflop": round(kernels_gflop, 2),
                          "share_of_matmul": share(kernels_gflop, kernel_totals),
                          "share_of_step_time": round(statistics.median(
                              k / s for k, s in zip(kernel_totals, step_times)), 3)},
        "groups": groups,
    }
