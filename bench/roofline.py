"""Section 2 of the benchmark: one UNet step of the SD-1.5-sized model against the machine's limit.

* FLOPs per step: ``torch.utils.flop_counter`` over one forward at 256x256 with CFG
  (batch 2, 32x32 latents, 77 text tokens), run on the ``meta`` device: shapes only,
  instant, and it counts the attention matmuls, which the counter misses on the CPU
  (there SDPA runs as one fused kernel the counter has no formula for: 17 of 360 GFLOP).
* The practical limit: a 4096x4096 sgemm (fp32 matmul) on the same machine, run as one
  more contender in the same rounds as the steps (each share is paired per round:
  ``paired_share``); and the bf16 matmul where the CPU has native bf16.
* Step time and achieved GFLOP/s per variant, interleaved round by round:
  ``NCHW fp32`` (diffusers' default), ``channels_last fp32`` (the engine's CPU default),
  the latter with one torch thread, and with classic attention instead of SDPA;
  ``channels_last bf16`` (precision Auto on CPUs with native bf16). Both channels_last
  variants run as the engine runs them, with their weights packed once
  (``engine/packed_weights.py``: convolutions, and linear layers in bf16); ``..., unpacked``
  is the same UNet with eager torch's layers, which reorder the weights at every call. The compiled UNet is
  measured inside a Generate by the ``compile`` section (``compile_cache.py``).
"""

from __future__ import annotations

import copy
import gc
import importlib
from typing import Any

import timing

SIZE = 256  # pixels; the latents are SIZE / 8
TOKENS = 77


def _packed_weights() -> Any:
    return importlib.import_module(timing.import_engine().__name__ + ".packed_weights")


def unet_flops(unet_config: dict[str, Any], size: int = SIZE, batch: int = 2) -> dict[str, Any]:
    """FLOPs of one UNet forward, counted on the meta device (no memory, no time)."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
        sample = torch.randn(batch, unet.config.in_channels, size // 8, size // 8)
        context = torch.randn(batch, TOKENS, unet.config.cross_attention_dim)
        timestep = torch.tensor([500])
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(sample, timestep, encoder_hidden_states=context)
    by_op = {str(op).removeprefix("aten."): round(n / 1e9, 2) for op, n in counter.get_flop_counts()["Global"].items()}
    total = counter.get_total_flops()
    return {"flop": total, "gflop": round(total / 1e9, 2), "gflop_by_op": by_op}


MATMUL_N = 4096


class Matmul:
    """An n x n matmul in ``dtype``: the practical limit, run as one more contender in the same
    rounds as the steps, so that each share is paired per round (``paired_share``)."""

    def __init__(self, dtype: Any = None, n: int = MATMUL_N) -> None:
        import torch

        dtype = dtype or torch.float32
        generator = torch.Generator().manual_seed(0)
        self.a = torch.randn(n, n, generator=generator).to(dtype)
        self.b = torch.randn(n, n, generator=generator).to(dtype)
        self.n, self.dtype = n, str(dtype).removeprefix("torch.")
        self.gflop = 2 * n**3 / 1e9

    def __call__(self) -> Any:
        return self.a @ self.b

    def rate(self, samples: timing.Samples) -> dict[str, Any]:
        return {
            "n": self.n,
            "dtype": self.dtype,
            "gflops": round(self.gflop / samples.median, 1),
            "gflops_best": round(self.gflop / min(samples.times), 1),
            "cpu_share": samples.summary()["cpu_share"],
        }


def matmul_rate(n: int = MATMUL_N, dtype: Any = None, runs: int = 5) -> dict[str, Any]:
    """GFLOP/s of an n x n matmul alone (median of ``runs`` after one warm-up)."""
    matmul = Matmul(dtype, n)
    return matmul.rate(timing.interleave({"mm": matmul}, runs=runs, warmup=1)["mm"])


def paired_share(samples: dict[str, timing.Samples], step: str, step_gflop: float, limit: str,
                 limit_gflop: float) -> float:
    """Median over rounds of the step's GFLOP/s / the matmul's GFLOP/s in the same round.

    This VM's speed drifts (other tenants of the host): one UNet's step took 0.85 to 1.32 s
    within a minute, and the bf16 matmul's median was 552, 588, 736 and 948 GFLOP/s in
    separate runs. A share taken against a matmul timed minutes earlier says more about that
    drift than about the step.
    """
    return step_gflop / limit_gflop * timing.paired_ratio(samples, limit, step)


class _OneThread:
    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)


def measure(
    unets: dict[str, Any],
    *,
    runs: int,
    warmup: int = 1,
    log: Any = print,
    size: int = SIZE,
    flops: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Step times of the variants built from ``unets`` (``nchw``, optional ``channels_last``/``bf16``).

    Missing UNets are made from ``nchw`` (a deep copy each: 3.4 GB in fp32 at SD 1.5 size) and added
    to ``unets``, packed as the engine runs them.
    """
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    nchw = unets["nchw"]
    cl = unets.get("channels_last")
    if cl is None:
        cl = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    skipped: dict[str, str] = {}
    bf16 = unets.get("bf16")
    bf16_nchw = None
    if timing.bf16_native():
        if bf16 is None:
            bf16 = copy.deepcopy(nchw).to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        bf16_nchw = copy.deepcopy(nchw).to(dtype=torch.bfloat16)
    else:
        skipped["bf16"] = "no native bf16 on this CPU (AVX512-BF16/AMX): emulated bf16 is slower"
        bf16 = None
    packed_weights = _packed_weights()
    packed_weights.pack([m for m in (cl, bf16) if m is not None])  # as the engine runs them (no-op if it did)
    unpacked = {}
    for name, module in (("channels_last fp32", cl), ("channels_last bf16", bf16)):
        if module is not None:
            twin = copy.deepcopy(module)
            if packed_weights.unpack([twin]):
                unpacked[f"{name}, unpacked"] = twin
    config = nchw.config
    batch = 2
    sample = torch.randn(batch, config.in_channels, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(batch, TOKENS, config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    timestep = torch.tensor([500])

    def step(unet: Any, dtype: Any = torch.float32) -> Any:
        with torch.no_grad():
            return unet(sample.to(dtype), timestep, encoder_hidden_states=context.to(dtype)).sample

    def classic_attention() -> Any:
        cl.set_attn_processor(AttnProcessor())
        try:
            return step(cl)
        finally:
            cl.set_attn_processor(AttnProcessor2_0())

    def one_thread() -> Any:
        with _OneThread():
            return step(cl)

    contenders: dict[str, Any] = {
        "NCHW fp32": lambda: step(nchw),
        "channels_last fp32": lambda: step(cl),
        "channels_last fp32, 1 thread": one_thread,
        "channels_last fp32, classic attention": classic_attention,
    }
    if bf16 is not None and bf16_nchw is not None:
        contenders["NCHW bf16"] = lambda: step(bf16_nchw, torch.bfloat16)
        contenders["channels_last bf16"] = lambda: step(bf16, torch.bfloat16)
    for name, twin in unpacked.items():
        contenders[name] = lambda twin=twin: step(twin, next(twin.parameters()).dtype)
    limits = {"fp32": Matmul(torch.float32)}
    if bf16 is not None:
        limits["bf16"] = Matmul(torch.bfloat16)
    for precision, matmul in limits.items():
        contenders[f"matmul {precision}"] = matmul
    result: dict[str, Any] = {"size": size, "batch": batch, "skipped": skipped}

    reference = step(nchw)
    result["max_abs_diff_vs_nchw"] = {
        "channels_last fp32": float((step(cl) - reference).abs().max()),
    }
    if bf16 is not None:
        result["max_abs_diff_vs_nchw"]["channels_last bf16"] = float(
            (step(bf16, torch.bfloat16).float() - reference).abs().max()
        )
    result["output_max_abs"] = float(reference.abs().max())
    for name, twin in unpacked.items():  # fp32: the same bits; bf16: packed linears may differ by a bf16 step
        packed = bf16 if "bf16" in name else cl
        dtype = next(twin.parameters()).dtype
        result.setdefault("packed_max_abs_diff_vs_unpacked", {})[name.removesuffix(", unpacked")] = float(
            (step(packed, dtype).float() - step(twin, dtype).float()).abs().max())

    threads = {"channels_last fp32, 1 thread": 1}
    log(f"  roofline: {len(contenders)} contenders x {runs} runs")
    samples = timing.interleave(contenders, runs=runs, warmup=warmup, threads=threads)
    flops = flops or unet_flops(dict(config), size=size, batch=batch)
    gflop = flops["gflop"]
    result["flops"] = flops
    result["sgemm"] = limits["fp32"].rate(samples["matmul fp32"])
    result["bf16_gemm"] = limits["bf16"].rate(samples["matmul bf16"]) if "bf16" in limits else None
    result["share_of_matmul_limit"] = {
        name: round(paired_share(samples, name, gflop, f"matmul {precision}", limits[precision].gflop), 2)
        for name in samples if not name.startswith("matmul")
        for precision in ["bf16" if "bf16" in name else "fp32"]
    }
    for precision in limits:
        del samples[f"matmul {precision}"]
    result["variants"] = {}
    for name, sample_set in samples.items():
        summary = sample_set.summary()
        summary["gflops"] = round(gflop / sample_set.median, 1)
        summary["gflops_best"] = round(gflop / min(sample_set.times), 1)
        result["variants"][name] = summary
    result["speedup_vs_nchw"] = {
        name: round(timing.paired_ratio(samples, "NCHW fp32", name), 3) for name in samples if name != "NCHW fp32"
    }
    result["packing_speedup"] = {
        name.removesuffix(", unpacked"): round(timing.paired_ratio(samples, name, name.removesuffix(", unpacked")), 3)
        for name in unpacked
    }
    result["packed_bytes"] = packed_weights.packed_bytes([m for m in (cl, bf16) if m is not None])
    unets.setdefault("channels_last", cl)
    if bf16 is not None:
        unets.setdefault("bf16", bf16)
    del reference, unpacked
    gc.collect()
    return result


def unet_step(unet: Any, size: int = SIZE, batch: int = 2) -> Any:
    """One denoising step of ``unet`` at ``size`` pixels with CFG's batch, in the UNet's own dtype."""
    import torch

    dtype = next(unet.parameters()).dtype
    config = unet.config
    sample = torch.randn(batch, config.in_channels, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(batch, TOKENS, config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    sample, context, timestep = sample.to(dtype), context.to(dtype), torch.tensor([500])

    def step() -> Any:
        with torch.no_grad():
            return unet(sample, timestep, encoder_hidden_states=context).sample

    return step


def measure_vae(vaes: dict[str, Any], *, runs: int, warmup: int = 1, size: int = SIZE) -> dict[str, Any]:
    """One VAE decode at ``size``: NCHW vs channels_last, fp32 and (native only) bf16.

    ``vaes``: ``nchw`` (fp32), optional ``channels_last`` and ``bf16``; missing ones are copies.
    """
    import torch

    nchw = vaes["nchw"]
    cl = vaes.get("channels_last")
    if cl is None:
        cl = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    latents = torch.randn(1, nchw.config.latent_channels, size // 8, size // 8, generator=torch.Generator().manual_seed(2))

    def decode(vae: Any, dtype: Any = torch.float32) -> Any:
        with torch.no_grad():
            return vae.decode(latents.to(dtype)).sample

    contenders = {"NCHW fp32": lambda: decode(nchw), "channels_last fp32": lambda: decode(cl)}
    if timing.bf16_native():
        bf16 = vaes.get("bf16")
        if bf16 is None:
            bf16 = copy.deepcopy(cl)
            torch.nn.Module.to(bf16, dtype=torch.bfloat16)
        contenders["channels_last bf16"] = lambda: decode(bf16, torch.bfloat16)
    samples = timing.interleave(contenders, runs=runs, warmup=warmup)
    return {
        "size": size,
        "variants": {name: s.summary() for name, s in samples.items()},
        "speedup_vs_nchw": {
            name: round(timing.paired_ratio(samples, "NCHW fp32", name), 3) for name in samples if name != "NCHW fp32"
        },
    }


def median_step(result: dict[str, Any], name: str) -> float | None:
    variant = result.get("variants", {}).get(name)
    return None if variant is None else variant["median"]

