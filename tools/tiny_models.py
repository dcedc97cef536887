"""Tiny, seeded, offline Stable Diffusion models for tests, demos and benchmarks.

Not part of the shipped add-on. Every model here is built from configs (the way
diffusers' own tests build ``get_dummy_components``), saved with the real
``save_pretrained`` and meant to be loaded back through the real loaders, so the
engine's code paths are exercised without a download.

* :func:`build_tiny_sd` - an SD-1.x-like pipeline folder (``model_index.json``);
  ``sd2=True`` gives an SD-2.x-like one (linear projections, GELU text encoder),
  ``prediction_type="v_prediction"`` a v-prediction model.
* :func:`build_tiny_sdxl` - an SDXL-like pipeline folder (two text encoders,
  pooled embeddings, size conditioning).
* :func:`build_tiny_x4_upscaler` - a ``StableDiffusionUpscalePipeline`` folder shaped like
  ``stabilityai/stable-diffusion-x4-upscaler`` (latents at the input size, x4 out).
* :func:`build_tiny_single_file` - the tiny SD written as one original-layout
  (LDM) ``.safetensors`` checkpoint, as a web download would be.
* :func:`build_tiny_ip_adapter` - an IP-Adapter (image projection + adapter attention weights) for a tiny
  model and a tiny ``CLIPVisionModelWithProjection`` image encoder, laid out like h94/IP-Adapter.
* :func:`install_in_hf_cache` - puts a folder into a Hugging Face cache folder
  under a repo id, exactly as a download would have left it.
* :func:`write_safetensors_layout` and ``LAYOUTS`` - zero-filled ``.safetensors``
  files carrying the tensor names and shapes of other kinds of files (an SDXL
  or SD 2 inpainting checkpoint, a kohya SDXL LoRA, an SD 1.x ControlNet), for
  tests of what reads headers only (they are not loadable models).

Command line::

    python tools/tiny_models.py OUT_DIR [--sdxl] [--single-file]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

# Byte-level BPE alphabet, as in GPT-2/CLIP: every byte maps to a printable char.
_EXTRA_WORDS = ("brick", "wall", "stone", "wood", "moss", "rust", "tile", "red")


def _bytes_to_unicode() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            chars.append(256 + n)
            n += 1
    order = printable + [b for b in range(256) if b not in printable]
    mapping = dict(zip(order, chars, strict=True))
    return [chr(mapping[b]) for b in range(256)]


def _tokenizer_files(folder: Path) -> None:
    """Write a byte-level CLIP ``vocab.json`` + ``merges.txt`` (no hub needed)."""
    alphabet = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in _EXTRA_WORDS:
        # Merge left to right: "b r" -> "br", "br i" -> "bri", ..., last piece ends the word.
        left = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merge = f"{left} {right}"
            if merge not in merges:
                merges.append(merge)
            left = left + right
            vocab.setdefault(left, len(vocab))
    vocab.setdefault("<|startoftext|>", len(vocab))
    vocab.setdefault("<|endoftext|>", len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def _tokenizer(scratch: Path) -> Any:
    from transformers import CLIPTokenizer

    _tokenizer_files(scratch)
    return CLIPTokenizer.from_pretrained(str(scratch), model_max_length=77, local_files_only=True)


def _text_config(tokenizer: Any, *, hidden_size: int = 32, hidden_act: str = "quick_gelu", **extra: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
        hidden_act=hidden_act,
        **extra,
    )


def _tiny_vae() -> Any:
    import torch
    from diffusers import AutoencoderKL

    # Four blocks -> vae_scale_factor 8, like real SD (a 2-block VAE makes latents 4x larger and slow).
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )
    # Random 3x3 decoder kernels turn latents into pixel noise; positive, normalised kernels are
    # low-pass filters, so decoded images have spatial structure like real ones. Seam and
    # img2img tests need that: in pure noise a wrap-around seam looks like any other neighbour.
    with torch.no_grad():
        for module in vae.decoder.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
                kernel = module.weight.abs()
                module.weight.copy_(kernel / kernel.sum(dim=(1, 2, 3), keepdim=True))
    return vae


_SD_SCHEDULER = {
    # The scheduler config real SD 1.5 ships (PNDM, scaled-linear betas).
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "timestep_spacing": "leading",
}


def build_tiny_sd(
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    prediction_type: str = "epsilon",
    sd2: bool = False,
    kind: str = "txt2img",
    time_cond_proj_dim: int | None = None,
) -> Path:
    """Build an SD-1.x-like pipeline (or SD-2.x-like with ``sd2=True``) and save it to ``folder``.

    Args:
        folder: where the diffusers folder (``model_index.json``) goes; created if needed.
        seed: torch seed for the random weights; the same seed gives the same files.
        prediction_type: ``"epsilon"`` or ``"v_prediction"`` (written into the scheduler config).
        sd2: SD-2.x architecture traits (linear projections in the transformers, GELU text encoder).
        kind: ``"txt2img"``; ``"inpaint"`` a dedicated inpainting model (9-channel UNet,
            ``StableDiffusionInpaintPipeline``); ``"depth"`` an SD-2-depth-like model (5-channel UNet,
            ``StableDiffusionDepth2ImgPipeline`` without its depth estimator, as when a depth map is given).
        time_cond_proj_dim: a guidance embedding in the UNet (what LCM-distilled UNets have).

    Returns:
        The folder, as a ``Path``.
    """
    import torch
    from diffusers import (
        PNDMScheduler,
        StableDiffusionDepth2ImgPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    in_channels = {"txt2img": 4, "inpaint": 9, "depth": 5}[kind]

    out = Path(folder)
    tokenizer = _tokenizer(out / "_tokenizer_src")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        # Like real SD: attention in the high-resolution blocks, none in the last down / first up block.
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        norm_num_groups=32,
        use_linear_projection=sd2,
        time_cond_proj_dim=time_cond_proj_dim,
    )
    torch.manual_seed(seed + 1)
    vae = _tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(tokenizer, hidden_act="gelu" if sd2 else "quick_gelu"))
    scheduler = PNDMScheduler(
        **{k: v for k, v in _SD_SCHEDULER.items() if k != "clip_sample"}, prediction_type=prediction_type
    )
    common = {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}
    if kind == "depth":
        pipe = StableDiffusionDepth2ImgPipeline(**common, depth_estimator=None, feature_extractor=None)
    else:
        pipeline_class = StableDiffusionInpaintPipeline if kind == "inpaint" else StableDiffusionPipeline
        pipe = pipeline_class(**common, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out)
    shutil.rmtree(out / "_tokenizer_src")
    return out


def build_tiny_lcm(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A few-step model as LCM checkpoints ship: ``LatentConsistencyModelPipeline`` with an ``LCMScheduler``.

    The tiny SD model with a guidance embedding in its UNet (``time_cond_proj_dim``, as LCM
    distillation adds) in the LCM pipeline, which takes no negative prompt.
    """
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler, StableDiffusionPipeline

    out = Path(folder)
    source = build_tiny_sd(out.parent / f"_{out.name}_sd", seed=seed, time_cond_proj_dim=32)
    sd = StableDiffusionPipeline.from_pretrained(source, local_files_only=True)
    pipe = LatentConsistencyModelPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
        scheduler=LCMScheduler.from_config(sd.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)
    shutil.rmtree(source)
    return out


def sdxl_scheduler():
    """The scheduler of stabilityai/stable-diffusion-xl-base-1.0 (its scheduler_config.json)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
    )


def build_tiny_sdxl(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build an SDXL-like pipeline (two text encoders, pooled embeddings, size conditioning)."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    out = Path(folder)
    tokenizer = _tokenizer(out / "_tokenizer_src")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 size/crop numbers * 8 + pooled text embedding (32)
        cross_attention_dim=64,  # hidden states of both text encoders, concatenated
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = _tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(tokenizer, hidden_act="gelu"))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer, hidden_act="gelu", projection_dim=32))
    scheduler = sdxl_scheduler()
    pipe = StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(out)
    shutil.rmtree(out / "_tokenizer_src")
    return out


def build_tiny_x4_upscaler(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A ``StableDiffusionUpscalePipeline`` shaped like ``stabilityai/stable-diffusion-x4-upscaler``, saved to ``folder``.

    Its traits, small: a 3-block VAE (downsampling x4, ``scaling_factor`` 0.08333, latents at the input
    size), a UNet reading 7 channels (4 latent + the 3-channel noised low-res image) with the noise level
    as a class label (``num_class_embeds``), a GELU text encoder (SD 2), a DDPM ``low_res_scheduler``
    that noises the input, a v-prediction DDIM scheduler and ``max_noise_level`` 350.
    The UNet's ``sample_size`` 32 makes its native output 128 px (the real one: 128 -> 512 px).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    out = Path(folder)
    tokenizer = _tokenizer(out / "_tokenizer_src")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=7,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        use_linear_projection=True,
        num_class_embeds=1000,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=0.08333,
    )
    with torch.no_grad():  # low-pass decoder kernels, as in _tiny_vae: decoded tiles have structure
        for module in vae.decoder.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
                kernel = module.weight.abs()
                module.weight.copy_(kernel / kernel.sum(dim=(1, 2, 3), keepdim=True))
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(tokenizer, hidden_act="gelu"))
    pipe = StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02),
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02,
                                prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False),
        max_noise_level=350,
    )
    pipe.save_pretrained(out)
    shutil.rmtree(out / "_tokenizer_src")
    return out


# --- ControlNets and LoRAs ------------------------------------------------------------------------


def build_tiny_controlnet(
    folder: str | os.PathLike[str],
    base_model: str | os.PathLike[str],
    *,
    seed: int = 0,
    single_file: bool = False,
    embedding_channels: tuple[int, ...] = (8, 16, 16, 32),
) -> Path:
    """A tiny ControlNet for the tiny model in ``base_model`` (``ControlNetModel.from_unet``), saved to ``folder``.

    ``from_unet`` starts the ControlNet's output ("zero") convolutions at zero, which would make it do
    nothing; here they get small seeded random weights so the control image visibly steers the result.
    ``single_file=True`` also writes ``<folder>/tiny-controlnet.safetensors`` (diffusers key names, as
    single-file SDXL ControlNets are published); its config stays in ``folder``.
    ``embedding_channels``: the control-image encoder's widths (real SD ControlNets: 16, 32, 96, 256).

    Returns:
        ``folder`` (``config.json`` + weights), or the ``.safetensors`` file with ``single_file``.
    """
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file

    out = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(str(base_model), subfolder="unet", local_files_only=True)
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=embedding_channels)
    with torch.no_grad():
        zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        for conv in [*zero_convs, controlnet.controlnet_cond_embedding.conv_out]:
            conv.weight.normal_(0.0, 0.3)
            conv.bias.normal_(0.0, 0.05)
    controlnet.save_pretrained(out)
    if not single_file:
        return out
    path = out / "tiny-controlnet.safetensors"
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, str(path))
    return path


def build_tiny_lora(
    folder: str | os.PathLike[str], base_model: str | os.PathLike[str], *, seed: int = 0, rank: int = 4
) -> Path:
    """A tiny LoRA for the tiny model in ``base_model``: a peft ``LoraConfig`` on its UNet's attention
    projections with seeded non-zero weights, saved with diffusers' ``save_lora_weights``.

    Returns:
        ``<folder>/pytorch_lora_weights.safetensors``.
    """
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    out = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(str(base_model), subfolder="unet", local_files_only=True)
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    xl = unet.config.addition_embed_type == "text_time"
    pipeline_class = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    pipeline_class.save_lora_weights(out, unet_lora_layers=layers, safe_serialization=True)
    return out / "pytorch_lora_weights.safetensors"


# --- IP-Adapters (reference images) ---------------------------------------------------------------

IP_ADAPTER_SD15 = "models/ip-adapter_sd15.safetensors"  # where h94/IP-Adapter keeps each file
IP_ADAPTER_SDXL_VIT_H = "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"
IP_IMAGE_ENCODER = "models/image_encoder"


def build_tiny_image_encoder(folder: str | os.PathLike[str], *, seed: int = 0, projection_dim: int = 16) -> Path:
    """A tiny ``CLIPVisionModelWithProjection`` (32 px input, 4 px patches) with its ``CLIPImageProcessor``
    config (``preprocessor_config.json``), saved to ``folder`` as h94/IP-Adapter's ``models/image_encoder``."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    out = Path(folder)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
        patch_size=4, projection_dim=projection_dim, hidden_act="gelu",
    )
    CLIPVisionModelWithProjection(config).save_pretrained(out, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def build_tiny_ip_adapter(
    root: str | os.PathLike[str],
    base_model: str | os.PathLike[str],
    *,
    weight_name: str = IP_ADAPTER_SD15,
    seed: int = 0,
    hidden_scale: dict[int, int] | None = None,
) -> Path:
    """An IP-Adapter for the tiny model in ``base_model``, in the layout diffusers' ``load_ip_adapter`` reads:
    one ``.safetensors`` with ``image_proj.*`` (an ``ImageProjection``: 4 image tokens as wide as the UNet's
    text features) and ``ip_adapter.<n>.to_k_ip/to_v_ip.weight`` for every cross-attention layer (n = 1, 3, 5,
    ... in the UNet's processor order, as diffusers numbers them), saved at ``root/weight_name``; the tiny
    image encoder at ``root/models/image_encoder`` (built once, shared, as h94/IP-Adapter shares its ViT-H).
    ``hidden_scale``: {layer number: factor} widens those layers' weights (a broken file, for failed loads).

    Returns:
        The adapter file.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    out = Path(root)
    encoder = out / IP_IMAGE_ENCODER
    if not (encoder / "config.json").is_file():
        build_tiny_image_encoder(encoder, seed=seed + 100)
    projection_dim = json.loads((encoder / "config.json").read_text(encoding="utf-8"))["projection_dim"]
    unet = UNet2DConditionModel.from_pretrained(str(base_model), subfolder="unet", local_files_only=True)
    width = unet.config.cross_attention_dim
    channels = list(unet.config.block_out_channels)
    generator = torch.Generator().manual_seed(seed)

    def weight(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator) * (1.0 / shape[-1] ** 0.5)

    tensors = {
        "image_proj.proj.weight": weight(4 * width, projection_dim),
        "image_proj.proj.bias": torch.zeros(4 * width),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        block = name.split(".")
        if block[0] == "mid_block":
            hidden = channels[-1]
        elif block[0] == "up_blocks":
            hidden = list(reversed(channels))[int(block[1])]
        else:
            hidden = channels[int(block[1])]
        hidden *= (hidden_scale or {}).get(key_id, 1)
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = weight(hidden, width)
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = weight(hidden, width)
        key_id += 2
    path = out / weight_name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


# --- single-file (original LDM layout) -------------------------------------------------------------
#
# A web-downloaded SD checkpoint keeps the original CompVis/LDM key names
# (``model.diffusion_model.input_blocks.1.0.in_layers.0.weight`` ...). diffusers'
# ``from_single_file`` converts those to diffusers names. We write the inverse
# mapping for the tiny SD (general in the number of levels and layers per block)
# and verify it by converting back with diffusers' own converters.

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_TOP = {"conv_norm_out": "norm_out"}


def _unet_to_ldm(key: str, config: Any) -> str:
    per = config.layers_per_block + 1
    parts = key.split(".")
    for diffusers_name, ldm_name in _UNET_TOP.items():
        if key.startswith(diffusers_name + "."):
            return ldm_name + key[len(diffusers_name) :]

    def resnet_tail(tail: list[str]) -> str:
        name = tail[0]
        return ".".join([_UNET_RESNET.get(name, name), *tail[1:]])

    if parts[0] == "down_blocks":
        level = int(parts[1])
        if parts[2] == "resnets":
            return f"input_blocks.{per * level + int(parts[3]) + 1}.0." + resnet_tail(parts[4:])
        if parts[2] == "attentions":
            return f"input_blocks.{per * level + int(parts[3]) + 1}.1." + ".".join(parts[4:])
        if parts[2] == "downsamplers":  # down_blocks.i.downsamplers.0.conv.weight
            return f"input_blocks.{per * (level + 1)}.0.op." + parts[-1]
    if parts[0] == "up_blocks":
        level = int(parts[1])
        if parts[2] == "resnets":
            return f"output_blocks.{per * level + int(parts[3])}.0." + resnet_tail(parts[4:])
        if parts[2] == "attentions":
            return f"output_blocks.{per * level + int(parts[3])}.1." + ".".join(parts[4:])
        if parts[2] == "upsamplers":
            has_attention = "CrossAttn" in config.up_block_types[level]
            return f"output_blocks.{per * level + per - 1}.{2 if has_attention else 1}.conv." + parts[-1]
    if parts[0] == "mid_block":
        if parts[1] == "resnets":
            return f"middle_block.{2 * int(parts[2])}." + resnet_tail(parts[3:])
        if parts[1] == "attentions":
            return "middle_block.1." + ".".join(parts[3:])
    raise KeyError(f"no LDM name for UNet key {key!r}")


def _vae_to_ldm(key: str, config: Any) -> str:
    parts = key.split(".")
    n = len(config.up_block_types)
    for diffusers_name, ldm_name in _VAE_TOP.items():
        key = key.replace(f".{diffusers_name}.", f".{ldm_name}.")
    parts = key.split(".")
    coder = parts[0]
    if coder in ("encoder", "decoder") and parts[1] in ("down_blocks", "up_blocks"):
        i = int(parts[2])
        ldm_level = i if coder == "encoder" else n - 1 - i
        kind = "down" if coder == "encoder" else "up"
        if parts[3] == "resnets":
            tail = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.{kind}.{ldm_level}.block.{parts[4]}.{tail}"
        sampler = "downsample" if coder == "encoder" else "upsample"
        return f"{coder}.{kind}.{ldm_level}.{sampler}.conv.{parts[-1]}"
    if coder in ("encoder", "decoder") and parts[1] == "mid_block":
        if parts[2] == "resnets":
            tail = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.mid.block_{int(parts[3]) + 1}.{tail}"
        if parts[2] == "attentions":
            name = ".".join(parts[4:-1])
            return f"{coder}.mid.attn_1.{_VAE_ATTN[name]}.{parts[-1]}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv keep their names


def build_tiny_single_file(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write the tiny SD (same weights as ``build_tiny_sd(seed=seed)``) as one LDM-layout ``.safetensors``.

    ``from_single_file`` needs the matching diffusers *configs*: diffusers infers the
    model type from the checkpoint's keys (this one reads as SD 1.x) and looks up the
    configs of ``stable-diffusion-v1-5/stable-diffusion-v1-5``. The tiny configs are
    written beside the checkpoint in ``<folder>/config`` so a test can put them into a
    Hugging Face cache under that repo id (:func:`install_in_hf_cache`) or pass them
    as ``config=``.

    Returns:
        Path to ``<folder>/tiny-sd.safetensors``.
    """
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
    from safetensors.torch import save_file

    out = Path(folder)
    config_dir = build_tiny_sd(out / "config", seed=seed)
    pipe = StableDiffusionPipeline.from_pretrained(config_dir, local_files_only=True)
    checkpoint: dict[str, Any] = {}
    unet_sd = pipe.unet.state_dict()
    for key, value in unet_sd.items():
        checkpoint["model.diffusion_model." + _unet_to_ldm(key, pipe.unet.config)] = value
    vae_sd = pipe.vae.state_dict()
    for key, value in vae_sd.items():
        checkpoint["first_stage_model." + _vae_to_ldm(key, pipe.vae.config)] = value
    for key, value in pipe.text_encoder.state_dict().items():
        # Original checkpoints say ``text_model.``; transformers >= 5.6 flattened CLIPTextModel's names.
        key = key if key.startswith("text_model.") else "text_model." + key
        checkpoint["cond_stage_model.transformer." + key] = value

    # Prove the inverse with diffusers' own forward converters (a wrong name fails here, not in a test).
    for converted, original in (
        (convert_ldm_unet_checkpoint(checkpoint, dict(pipe.unet.config)), unet_sd),
        (convert_ldm_vae_checkpoint(checkpoint, dict(pipe.vae.config)), vae_sd),
    ):
        if set(converted) != set(original) or any(not torch.equal(converted[k], original[k]) for k in original):
            missing = sorted(set(original) ^ set(converted))[:5]
            raise RuntimeError(f"LDM key mapping does not round-trip through diffusers: {missing}")

    for name in ("unet", "vae", "text_encoder"):  # the checkpoint carries these; keep only their configs
        for weights in (config_dir / name).glob("*.safetensors"):
            weights.unlink()
    path = out / "tiny-sd.safetensors"
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(path))
    return path


def install_in_hf_cache(
    folder: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    commit: str | None = None,
) -> Path:
    """Lay ``folder`` out in ``cache_dir`` as the Hugging Face hub cache would after downloading ``repo_id``.

    ``models--org--name/{blobs,refs/main,snapshots/<commit>}``: blobs named by their
    sha256, snapshot entries as relative symlinks (copies where links are refused).

    Returns:
        The snapshot folder.
    """
    src = Path(folder)
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = file.relative_to(src)
        data = file.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        try:
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:
            shutil.copyfile(blob, target)
    return snapshot


_UNET = "model.diffusion_model."
# Tensor names real files of each kind carry (a few per file: enough for diffusers' and our header reading).
LAYOUTS: dict[str, dict[str, tuple[int, ...]]] = {
    "sdxl_checkpoint": {
        _UNET + "input_blocks.0.0.weight": (320, 4, 3, 3),
        _UNET + "label_emb.0.0.weight": (1280, 2816),
        _UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 768),
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,),
        "conditioner.embedders.1.model.positional_embedding": (77, 1280),
        "first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3),
    },
    "sd2_inpainting_checkpoint": {
        _UNET + "input_blocks.0.0.weight": (320, 9, 3, 3),
        _UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
        "cond_stage_model.model.token_embedding.weight": (49408, 8),
    },
    "sdxl_kohya_lora": {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048),
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": (640, 4),
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha": (),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280),
    },
    "sd1_controlnet": {
        "control_model.time_embed.0.weight": (1280, 320),
        "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        "control_model.zero_convs.0.0.weight": (320, 320, 1, 1),
    },
}


def write_safetensors_layout(
    path: str | os.PathLike[str], shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None
) -> Path:
    """A valid ``.safetensors`` file of zero-filled F16 tensors named and shaped as ``shapes``.

    Written by hand from the format's specification (8-byte little-endian header length, JSON
    header, data), so a reader is checked against the format rather than one library's writer.
    """
    import struct

    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + 2 * count]}
        offset += 2 * count
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return out


def build_model_folders(root: str | os.PathLike[str], sd1_single_file: str | os.PathLike[str]) -> dict[str, Path]:
    """A ComfyUI-like ``<root>/ComfyUI/models`` tree of every kind of file a scan meets.

    ``checkpoints/``: the SD 1.x checkpoint (a copy of ``sd1_single_file``), an SDXL and an SD 2
    inpainting layout, a pickle, a truncated copy of the SD 1.x file, a 2-byte stub and a file whose
    header is not JSON; ``loras/``: an SDXL LoRA; ``controlnet/``: an SD 1.x ControlNet.
    Returns the files by name (``sd1 sdxl sd2_inpaint lora controlnet pickle truncated stub garbage``).
    """
    import struct

    models = Path(root) / "ComfyUI" / "models"
    checkpoints = models / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    files = {
        "sd1": checkpoints / "tiny-sd1.safetensors",
        "sdxl": write_safetensors_layout(checkpoints / "xl" / "tiny-sdxl.safetensors", LAYOUTS["sdxl_checkpoint"]),
        "sd2_inpaint": write_safetensors_layout(checkpoints / "tiny-sd2-inpainting.safetensors",
                                                LAYOUTS["sd2_inpainting_checkpoint"]),
        "lora": write_safetensors_layout(models / "loras" / "detail.safetensors", LAYOUTS["sdxl_kohya_lora"],
                                         {"ss_network_module": "networks.lora"}),
        "controlnet": write_safetensors_layout(models / "controlnet" / "depth.safetensors", LAYOUTS["sd1_controlnet"]),
        "pickle": checkpoints / "old.ckpt",
        "truncated": checkpoints / "half.safetensors",
        "stub": checkpoints / "stub.safetensors",
        "garbage": checkpoints / "garbage.safetensors",
    }
    data = Path(sd1_single_file).read_bytes()
    files["sd1"].write_bytes(data)
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["pickle"].write_bytes(b"PK\x03\x04 a pickle archive: never opened by a scan")
    files["stub"].write_bytes(b"\x01\x02")
    files["garbage"].write_bytes(struct.pack("<Q", 12) + b"{not json!!}")
    (checkpoints / "notes.txt").write_text("not a model")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write the model into")
    parser.add_argument("--sdxl", action="store_true", help="build the SDXL-like model instead of SD-1.x")
    parser.add_argument("--single-file", action="store_true", help="also write the SD-1.x model as one .safetensors")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.sdxl:
        path = build_tiny_sdxl(args.out_dir, seed=args.seed)
    elif args.single_file:
        path = build_tiny_single_file(args.out_dir, seed=args.seed)
    else:
        path = build_tiny_sd(args.out_dir, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
