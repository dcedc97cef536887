"""``bench/layer_times.py`` accounts for the whole step: every kernel call is recorded, and nothing is left patched.

No timing is asserted; the FLOPs of the recorded calls must add up to the step's own count
(torch's counter on the meta device), which fails if a convolution, linear layer or attention
call went unrecorded or was counted twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))  # bench scripts import each other by name
    import layer_times
    import roofline

    return layer_times, roofline


def test_recorded_calls_add_up_to_the_step_flops(bench_modules: Any, tiny_sd_model: Path) -> None:
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel

    layer_times, roofline = bench_modules
    unet = UNet2DConditionModel.from_pretrained(tiny_sd_model / "unet").eval()
    attention = F.scaled_dot_product_attention
    size = 64
    step = roofline.unet_step(unet, size)
    calls = layer_times.record(unet, step)

    assert F.scaled_dot_product_attention is attention  # restored
    assert not any(m._forward_hooks for m in unet.modules())
    assert sum(c.flop for c in calls) == roofline.unet_flops(dict(unet.config), size=size)["flop"]
    kinds = {c.group[0] for c in calls}
    assert {"3x3 convolution", "linear", "self-attention", "cross-attention"} <= kinds
    latent = f"{size // 8}²"
    assert (("3x3 convolution", latent) in {c.group for c in calls})
    with torch.no_grad():  # a replay computes what the step computed: the same module on the same input
        first_conv = next(c for c in calls if c.group[0] == "3x3 convolution")
        assert first_conv.run().shape[-1] == size // 8


def test_measure_reports_paired_shares(bench_modules: Any, tiny_sd_model: Path) -> None:
    from diffusers import UNet2DConditionModel

    layer_times, roofline = bench_modules
    unet = UNet2DConditionModel.from_pretrained(tiny_sd_model / "unet").eval()
    step_gflop = roofline.unet_flops(dict(unet.config), size=64)["gflop"]
    result = layer_times.measure(unet, roofline.unet_step(unet, 64), step_gflop=step_gflop, runs=2)

    assert result["step"]["runs"] == 2 and result["matmul"]["gflops"] > 0
    assert result["kernels_alone"]["gflop"] == pytest.approx(step_gflop, abs=0.01)
    assert sum(g["calls"] for g in result["groups"]) > 0
    assert all(g["share_of_matmul"] > 0 for g in result["groups"] if g["gflop"] > 0)
