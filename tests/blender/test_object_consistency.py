"""Issue 29's consistency metric on the product, at Sync Fraction 1.0: GRID and SYNC run through
``bpy.ops.latent_textures.generate()`` with Keep View Images on the (turned) cube, measured the way
``make bench`` measures them (``bench/consistency.py``: one rule, ``geometry.latent_sync``).

Tiny offline models; 6 views, Size 128, 3 steps, texture 256.
"""

import importlib.util

import bpy
import numpy as np

from harness import ADDON_MODULE, REPO_ROOT


def _bench_consistency():
    spec = importlib.util.spec_from_file_location("lt_bench_consistency", REPO_ROOT / "bench" / "consistency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


consistency = _bench_consistency()

# SYNC's decoded disagreement over GRID's, measured here: see the test's docstring for the figure and the margin.
DECODED_RATIO_BOUND = 0.9


def _run(method, fraction, tiny_sd_model, tiny_controlnet):
    obj = consistency.scene(bpy, "Cube")
    consistency.configure(bpy.context.scene.latent_textures, model=str(tiny_sd_model),
                          controlnet=str(tiny_controlnet), views=6, size=128, steps=3, texture_size=256)
    return consistency.run_method(bpy, ADDON_MODULE, obj, method, fraction)


def test_synchronised_views_agree_exactly_in_latent_space_and_closer_than_grid_decoded(tiny_sd_model,
                                                                                       tiny_controlnet):
    """SYNC at 1.0: every latent pixel that reads a texel some other view reads too holds the same value in
    both views: the synchronised x0 rendered by nearest lookup, and DPM++ 2M's last step is that x0 itself
    (sigma 0: x = 0 * x_t + 1 * x0). So the latents agree exactly, up to a few float32 roundings of values of
    the latents' size (the bound: 8 ulps of the largest latent).

    Decoded, the views still disagree (bench/consistency.py says why: the VAE decodes in screen space, each
    pixel from its latent's neighbourhood, and the random decoder turns latents into pixel noise). Measured
    here: GRID 0.126, SYNC 0.098, a ratio of 0.78 (the bench's cases, bench/results.md section 15: 0.70-0.88,
    the highest for the cube's 8 views, which share little surface, obliquely). The bound 0.9 leaves 0.12
    above this test's own figure: the figures are means over thousands of texels
    of fixed-seed runs, and another CPU kind (or its bf16 path) changes each value in its last bits or by a
    fraction of a percent, which moves such a mean by about a hundredth, not by tenths; GRID comes nowhere
    near agreeing (each of its views is painted without knowing the others), and a SYNC that stopped
    synchronising fails both checks: at Sync Fraction 0 (the same consistent noise, no synchronised step) the
    latents differ by 1.6 where views read one texel and the decoded ratio is 0.97."""
    grid = _run("GRID", None, tiny_sd_model, tiny_controlnet)
    synced = _run("SYNC", 1.0, tiny_sd_model, tiny_controlnet)
    print({"grid": grid["decoded"], "sync": synced["decoded"], "latent_texel": synced["latent_texel"],
           "latent_gather": synced["latent_gather"]})
    ulp = float(np.spacing(np.float32(synced["latent_max_abs"])))
    assert synced["latent_texel"] <= 8 * ulp
    assert synced["latent_gather"] > 0.0  # resampling: the views sample a finer latent texture at their own points
    assert synced["decoded"] <= DECODED_RATIO_BOUND * grid["decoded"]
    assert synced["decoded"] > 0.0  # decoded views are not identical: see above

