"""Full-sized Stable Diffusion models with random weights, for the benchmark (never shipped, never downloaded).

The architectures are those of the real models (their published diffusers
configs, written out here): the same layers, shapes, parameter counts and so the
same FLOPs per step as SD 1.5 (UNet 860 M parameters) and SDXL (UNet 2.6 G), but
random weights, so the images are noise. Speed does not depend on the weights.

The tokenizer is the tiny byte-level one from ``tools/tiny_models.py`` (no hub);
the text encoders keep the real vocabulary size, so their size is real too.

* :func:`sd15_components` / :func:`sdxl_components` - the pipeline's modules in memory.
* :func:`build_sd15_sized` / :func:`build_sdxl_sized` - saved as a diffusers folder
  (``model_index.json``), loadable by the engine and by diffusers alike. SD 1.5 in
  fp32 is 4.3 GB on disk: put it in a temp folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import timing


# stable-diffusion-v1-5/stable-diffusion-v1-5 unet/config.json
SD15_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": (320, 640, 1280, 1280),
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-5,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}
# .../vae/config.json (the SDXL VAE has the same layers; its scaling factor differs)
SD_VAE = {
    "act_fn": "silu",
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
}
# openai/clip-vit-large-patch14, text tower (SD 1.5's text encoder; SDXL's first)
CLIP_L = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "vocab_size": 49408,
    "projection_dim": 768,
}
# laion/CLIP-ViT-bigG-14, text tower (SDXL's second text encoder)
CLIP_BIGG = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "vocab_size": 49408,
    "projection_dim": 1280,
}
# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
SDXL_UNET = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": (5, 10, 20),
    "block_out_channels": (320, 640, 1280),
    "cross_attention_dim": 2048,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": (1, 2, 10),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "use_linear_projection": True,
}
# stabilityai/stable-diffusion-x4-upscaler, from its original config (Stability-AI/stablediffusion
# configs/stable-diffusion/x4-upscaling.yaml) in diffusers' terms: model_channels 256 x (1, 2, 2, 4),
# attention at downsampling 2/4/8 with self-attention off there but in the last level, 8 heads,
# context 1024 (OpenCLIP ViT-H), 1000 noise-level classes, latents at the input size.
X4_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": (256, 512, 512, 1024),
    "class_embed_type": None,
    "cross_attention_dim": 1024,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "in_channels": 7,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "num_class_embeds": 1000,
    "only_cross_attention": (True, True, True, False),
    "out_channels": 4,
    "sample_size": 128,
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "use_linear_projection": True,
}
X4_VAE = {  # ch 128 x (1, 2, 4), 2 res blocks: downsamples x4
    "act_fn": "silu",
    "block_out_channels": (128, 256, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
}
# laion/CLIP-ViT-H-14 text tower as SD 2 uses it (the penultimate layer: 23 of 24)
OPENCLIP_H = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "vocab_size": 49408,
    "projection_dim": 512,
}
SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def _tokenizer(scratch: Path) -> Any:
    # The byte-level CLIP tokenizer of tools/tiny_models.py (its files are written to ``scratch``).
    return timing.import_tiny_models()._tokenizer(scratch)


def _text_config(tokenizer: Any, spec: dict[str, Any]) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        layer_norm_eps=1e-5,
        **spec,
    )


def sd15_components(scratch: str | os.PathLike[str], *, seed: int = 0, device: Any = None) -> dict[str, Any]:
    """SD 1.5's modules with random weights (fp32), built on ``device`` (default: the CPU)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer = _tokenizer(Path(scratch) / "tokenizer-src")
    with torch.device(device or "cpu"):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**SD15_UNET)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(**SD_VAE, scaling_factor=0.18215)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(_text_config(tokenizer, CLIP_L))
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": PNDMScheduler(**SD15_SCHEDULER),
    }


def sdxl_components(scratch: str | os.PathLike[str], *, seed: int = 0, device: Any = None) -> dict[str, Any]:
    """SDXL base's modules with random weights (fp32), built on ``device`` (default: the CPU)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _tokenizer(Path(scratch) / "tokenizer-src")
    with torch.device(device or "cpu"):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**SDXL_UNET)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(**{**SD_VAE, "sample_size": 1024}, scaling_factor=0.13025, force_upcast=True)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(_text_config(tokenizer, CLIP_L))
        torch.manual_seed(seed + 3)
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer, CLIP_BIGG))
    scheduler = timing.import_tiny_models().sdxl_scheduler()
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer,
        "scheduler": scheduler,
    }


def _save(pipe: Any, out: Path, dtype: Any) -> Path:
    if dtype is not None:
        pipe.to(dtype=dtype)
    pipe.save_pretrained(out)
    return out


def build_sd15_sized(
    folder: str | os.PathLike[str], *, seed: int = 0, dtype: Any = None, device: Any = None
) -> Path:
    """Save an SD-1.5-sized random-weight pipeline to ``folder`` (fp32 unless ``dtype``); returns the folder."""
    from diffusers import StableDiffusionPipeline

    out = Path(folder)
    parts = sd15_components(out / "_scratch", seed=seed, device=device)
    pipe = StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    _save(pipe, out, dtype)
    shutil.rmtree(out / "_scratch", ignore_errors=True)
    return out


def build_sdxl_sized(
    folder: str | os.PathLike[str], *, seed: int = 0, dtype: Any = None, device: Any = None
) -> Path:
    """Save an SDXL-sized random-weight pipeline to ``folder`` (fp32 unless ``dtype``); returns the folder."""
    from diffusers import StableDiffusionXLPipeline

    out = Path(folder)
    parts = sdxl_components(out / "_scratch", seed=seed, device=device)
    pipe = StableDiffusionXLPipeline(**parts, force_zeros_for_empty_prompt=True)
    _save(pipe, out, dtype)
    shutil.rmtree(out / "_scratch", ignore_errors=True)
    return out


def build_x4_upscaler_sized(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Save a random-weight pipeline with the layers of ``stabilityai/stable-diffusion-x4-upscaler`` (fp32)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    out = Path(folder)
    tokenizer = _tokenizer(out / "_scratch")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**X4_UNET)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**X4_VAE, scaling_factor=0.08333)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(tokenizer, OPENCLIP_H))
    linear = {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_train_timesteps": 1000}
    pipe = StableDiffusionUpscalePipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer, unet=unet.eval(),
        low_res_scheduler=DDPMScheduler(**linear),
        scheduler=DDIMScheduler(**linear, prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False),
        max_noise_level=350,
    )
    _save(pipe, out, None)
    shutil.rmtree(out / "_scratch", ignore_errors=True)
    return out


def parameter_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())
