"""What a model file is, from its tensor names and shapes (and trainer metadata) alone.

``classify_header`` tells apart:

* the kind: a full checkpoint (UNet under ``model.diffusion_model.``), a LoRA
  (``lora_down``/``lora_up``, ``lora_A``/``lora_B``), a ControlNet
  (``control_model.``/``controlnet_*``), a VAE, a textual-inversion embedding;
* the family: SD 1.x (OpenAI CLIP text encoder, 768-wide cross-attention),
  SD 2.x (OpenCLIP, 1024), SDXL (two text encoders, 2048-wide cross-attention,
  the size-conditioning ``label_emb``);
* an IP-Adapter (``image_proj.`` + ``ip_adapter.*.to_k_ip``: its family from the width its image
  tokens are projected to);
* inpainting: the UNet's first convolution takes 9 channels instead of 4;
* few-step: the LCM guidance embedding (``cond_proj``), or a trainer's
  ``__metadata__`` that says so.

What cannot be told is ``None`` (shown as "unknown"), never guessed from a
file name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .safetensors_header import HeaderText

# Cross-attention width (the text encoder's output) per family.
CONTEXT_FAMILIES = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
KINDS = ("CHECKPOINT", "LORA", "CONTROLNET", "VAE", "EMBEDDING", "IP_ADAPTER", "MARIGOLD_INTRINSICS",
         "MARIGOLD_NORMALS", "MARIGOLD_DEPTH", "UNKNOWN")
# Diffusers pipelines (``model_index.json``'s ``_class_name``) that are no base model, by kind: the model picker
# never offers them as checkpoints; material maps read the Marigold ones (engine/material_maps.py).
PIPELINE_KINDS = {
    "MarigoldIntrinsicsPipeline": "MARIGOLD_INTRINSICS",
    "MarigoldNormalsPipeline": "MARIGOLD_NORMALS",
    "MarigoldDepthPipeline": "MARIGOLD_DEPTH",
}
# Trainer metadata that names the base model (kohya's sd-scripts, the Stability AI model spec).
_METADATA_FAMILY = (
    (re.compile(r"sdxl|stable-diffusion-xl", re.I), "SDXL"),
    (re.compile(r"sd_?v2|stable-diffusion-v2", re.I), "SD2"),
    (re.compile(r"sd_?v1|stable-diffusion-v1", re.I), "SD1"),
)
_METADATA_FAMILY_KEYS = ("ss_base_model_version", "modelspec.architecture")
_FEW_STEP_WORDS = re.compile(r"\b(lcm|turbo|lightning|hyper)\b", re.I)


def _metadata_family(metadata: Mapping[str, Any]) -> str | None:
    for key in _METADATA_FAMILY_KEYS:
        value = metadata.get(key)
        if isinstance(value, str):
            for pattern, family in _METADATA_FAMILY:
                if pattern.search(value):
                    return family
    return None


def _metadata_few_step(metadata: Mapping[str, Any]) -> bool | None:
    for key in ("modelspec.architecture", "modelspec.usage_hint", "ss_base_model_version"):
        value = metadata.get(key)
        if isinstance(value, str) and _FEW_STEP_WORDS.search(value):
            return True
    return None


@dataclass(frozen=True)
class Classification:
    kind: str
    family: str | None
    inpainting: bool | None = None
    few_step: bool | None = None


def classify_tensors(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, Any] | None = None) -> Classification:
    """``classify_header`` for a name -> shape mapping."""
    return classify_header(HeaderText.from_shapes(shapes, metadata))


def classify_header(header: HeaderText) -> Classification:
    """Kind and family from tensor names and shapes (and trainer metadata); None where it cannot be told."""
    metadata = header.metadata()
    few_step = True if b"cond_proj" in header.text else _metadata_few_step(metadata)

    if header.has_prefix("model.diffusion_model."):
        return Classification("CHECKPOINT", _checkpoint_family(header, metadata),
                              _inpainting(header.shape("model.diffusion_model.input_blocks.0.0.weight")), few_step)
    if header.has_prefix("image_proj.") and header.has_prefix("ip_adapter."):
        to_k = next((header.shape(f"ip_adapter.{i}.to_k_ip.weight") for i in (1, 0)
                     if header.shape(f"ip_adapter.{i}.to_k_ip.weight") is not None), None)
        width = to_k[1] if to_k is not None and len(to_k) == 2 else None
        return Classification("IP_ADAPTER", _width_family(width) or _metadata_family(metadata))
    if header.has_lora_weights():
        return Classification("LORA", _lora_family(header, metadata), None, few_step)
    if header.has_prefix("control_model."):
        family = "SDXL" if header.has("control_model.label_emb.0.0.weight") else None
        return Classification("CONTROLNET", family or _width_family(header.context_width("control_model.")),
                              None, few_step)
    if header.has_prefix("controlnet_cond_embedding.", "controlnet_down_blocks."):
        family = "SDXL" if header.has_prefix("add_embedding.") else None
        return Classification("CONTROLNET", family or _width_family(header.context_width("")), None, few_step)
    if header.has_prefix("encoder.conv_in.", "decoder.conv_in.", "first_stage_model."):
        return Classification("VAE", _metadata_family(metadata))
    if header.has("emb_params") or header.has("clip_l") or header.has("clip_g") or header.has_prefix("string_to_param"):
        return Classification("EMBEDDING", "SDXL" if header.has("clip_g") else _metadata_family(metadata))
    return Classification("UNKNOWN", _metadata_family(metadata))


def _width_family(width: int | None) -> str | None:
    return CONTEXT_FAMILIES.get(width) if width is not None else None


def _inpainting(conv_in_shape: tuple[int, ...] | None) -> bool | None:
    if conv_in_shape is None or len(conv_in_shape) != 4:
        return None
    return conv_in_shape[1] == 9


def _checkpoint_family(header: HeaderText, metadata: Mapping[str, Any]) -> str | None:
    """The text encoders say it (their layout differs per family); else the cross-attention width; else metadata."""
    if header.has_prefix("conditioner.embedders.1.") or (
        header.has("model.diffusion_model.label_emb.0.0.weight")
        and header.has_prefix("conditioner.embedders.0.transformer.")
    ):
        return "SDXL"
    if header.has_prefix("cond_stage_model.model."):
        return "SD2"
    if header.has_prefix("cond_stage_model.transformer."):
        return "SD1"
    return _width_family(header.context_width("model.diffusion_model.")) or _metadata_family(metadata)


def _lora_family(header: HeaderText, metadata: Mapping[str, Any]) -> str | None:
    if header.has_prefix("lora_te2_", "text_encoder_2.", "lora_te2."):
        return "SDXL"
    return _width_family(header.context_width("")) or _metadata_family(metadata)
