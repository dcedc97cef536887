"""SYNC's consistency on a box seen from four sides, with the tiny SD model (issue 29's metric): what two views
show of the same surface (each view gathered alone into the texels both see), for views generated
independently, as one GRID image, and synchronised (``engine/sync.py`` with ``geometry/latent_sync.py``)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from geometry.bake import BakeView
from geometry.camera import ViewCamera
from geometry.latent_sync import (LatentBake, latent_surface, latent_texture_size, latent_view, view_disagreement)
from geometry.raster import rasterize
from geometry.uv_raster import rasterize_uv_triangles

from geometry_frames import look_at, perspective
from scenes import box_uv_mesh

PIXELS, LATENT, STEPS = 256, 32, 3
EYES = [(3.2, 3.2, 2.2), (-3.2, 3.4, 2.4), (-3.3, -3.1, 2.0), (3.1, -3.3, 1.8)]


@pytest.fixture(scope="module")
def runs(engine_api, tiny_sd_model, run_sync):
    import torch
    from diffusers import StableDiffusionPipeline

    schedulers = importlib.import_module(engine_api.__name__ + ".schedulers")
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_model), safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    uv, positions, normals = box_uv_mesh()
    cameras = [ViewCamera(look_at(eye, (0, 0, 0)), perspective(35.0, 36.0, PIXELS, PIXELS), PIXELS, PIXELS, False)
               for eye in EYES]
    small = [ViewCamera(c.world_matrix, c.projection, LATENT, LATENT, False) for c in cameras]
    surfaces = [latent_surface(camera, positions, uv, corner_normals_world=normals) for camera in small]
    size = latent_texture_size(surfaces, 256)
    texels = rasterize_uv_triangles(uv, positions, normals, size)
    depths = [rasterize(camera, positions).depth for camera in small]
    bake = LatentBake(small, depths, [[texels]])
    views = [latent_view(surface, size) for surface in surfaces]

    def decode(latents):
        with torch.no_grad():
            images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        return ((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()

    out = {}
    for label, fraction in (("independent", 0.0), ("sync 0.8", 0.8), ("sync 1.0", 1.0)):
        pipe.scheduler = schedulers.make_scheduler("DPM_SOLVER_MULTISTEP", pipe.scheduler.config, STEPS)
        latents = run_sync(pipe, views, bake=bake, prompt="a crate", generator=torch.Generator().manual_seed(3),
                           steps=STEPS, guidance_scale=7.0, fraction=fraction)
        out[label] = (latents, decode(latents))
    pipe.scheduler = schedulers.make_scheduler("DPM_SOLVER_MULTISTEP", pipe.scheduler.config, STEPS)
    grid = pipe(prompt="a crate", num_inference_steps=STEPS, guidance_scale=7.0, height=2 * PIXELS,
                width=2 * PIXELS, generator=torch.Generator().manual_seed(3), output_type="latent").images
    tiles = torch.cat([grid[:, :, r * LATENT:(r + 1) * LATENT, c * LATENT:(c + 1) * LATENT]
                       for r in range(2) for c in range(2)])
    whole = decode(grid)[0]
    out["grid"] = (tiles, np.stack([whole[r * PIXELS:(r + 1) * PIXELS, c * PIXELS:(c + 1) * PIXELS]
                                    for r in range(2) for c in range(2)]))
    full_texels = rasterize_uv_triangles(uv, positions, normals, 256)
    full_depths = [rasterize(camera, positions).depth for camera in cameras]
    metric = {}
    for label, (latents, images) in out.items():
        latent_views = [BakeView(c, lat, d) for c, lat, d in zip(small, latents.permute(0, 2, 3, 1).numpy(), depths)]
        pixel_views = [BakeView(c, image, d) for c, image, d in zip(cameras, images, full_depths)]
        metric[label] = (view_disagreement([texels], latent_views, bake.settings),
                         view_disagreement([full_texels], pixel_views))
    print({label: tuple(round(v, 4) for v in values) for label, values in metric.items()})
    return metric


def test_synchronised_views_agree_where_they_see_the_same_surface_far_better_than_grid_or_independent(runs):
    """Measured (latents, decoded pixels): independent (3.06, 0.074), GRID (3.54, 0.092), SYNC 0.8 (1.03, 0.056),
    SYNC 1.0 (0.65, 0.054). In latent space SYNC 1.0 leaves 18 % of GRID's disagreement: the last step lands
    on the synchronised x0, and what remains is resampling - each view reads the latent texture by nearest
    lookup and the metric samples each view bilinearly, while this texture varies from texel to texel. The
    decoded views keep 58 % of GRID's: the tiny model's random VAE decoder turns every latent pixel into
    high-contrast pixel noise that spreads over its neighbours, so the same small latent difference decodes
    large. With the unsynchronised tail (fraction 0.8) the latent disagreement rises from 0.65 to 1.03, a third
    of independent views'."""
    independent, grid, synced = runs["independent"], runs["grid"], runs["sync 1.0"]
    assert synced[0] < 0.3 * min(grid[0], independent[0])
    assert synced[1] < 0.8 * min(grid[1], independent[1])
    assert synced[0] < runs["sync 0.8"][0] < 0.5 * independent[0]
