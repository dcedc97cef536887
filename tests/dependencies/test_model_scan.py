"""Model folders and Hugging Face caches scanned from file headers: kind, family, inpainting, problems.

The SD 1.x checkpoint is the real tiny one (``tools/tiny_models.build_tiny_single_file``, loadable by
diffusers); the other layouts are written with the tensor names real files of their kind carry and
checked against diffusers' own model-type inference where diffusers has one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from deps_support import import_dependencies

model_scan = import_dependencies("model_scan")
safetensors_header = import_dependencies("safetensors_header")
hf_cache = import_dependencies("hf_cache")

UNET = "model.diffusion_model."


@pytest.fixture
def model_folders(tmp_path: Path, tiny_models: Any, tiny_single_file: Path) -> dict[str, Path]:
    """A ComfyUI-like tree: checkpoints (SD 1.x, SDXL, SD 2 inpainting, a pickle, broken files), loras, controlnet."""
    return tiny_models.build_model_folders(tmp_path, tiny_single_file)


def entries_by_path(entries: list[Any]) -> dict[str, Any]:
    return {entry.path: entry for entry in entries}


def test_tool_folders_are_classified_from_headers(model_folders: dict[str, Path]) -> None:
    roots = [str(model_folders["sd1"].parents[1])]  # ComfyUI/models
    folders = [folder for _, folder in model_scan.tool_model_folders(roots)]
    assert [Path(f).name for f in folders] == ["checkpoints", "loras", "controlnet"]
    entries, missing = model_scan.scan_all([*folders, "/no/such/folder"], [])
    assert missing == ["/no/such/folder"]
    found = entries_by_path(entries)
    assert set(found) == {str(path) for path in model_folders.values()}  # notes.txt is not listed

    def summary(name: str) -> tuple[Any, ...]:
        entry = found[str(model_folders[name])]
        return entry.kind, entry.family, entry.inpainting, entry.problem is None, entry.refused is None

    assert summary("sd1") == ("CHECKPOINT", "SD1", False, True, True)
    assert summary("sdxl") == ("CHECKPOINT", "SDXL", False, True, True)
    assert summary("sd2_inpaint") == ("CHECKPOINT", "SD2", True, True, True)
    assert summary("lora") == ("LORA", "SDXL", None, True, True)
    assert summary("controlnet") == ("CONTROLNET", "SD1", None, True, True)
    assert summary("pickle") == ("UNKNOWN", None, None, True, False)
    assert "arbitrary code" in found[str(model_folders["pickle"])].refused
    for broken in ("truncated", "stub", "garbage"):
        assert summary(broken)[:2] == ("UNKNOWN", None) and not found[str(model_folders[broken])].usable
    assert "truncated" in found[str(model_folders["truncated"])].problem
    assert "truncated" in found[str(model_folders["stub"])].problem
    assert "JSON" in found[str(model_folders["garbage"])].problem
    assert found[str(model_folders["sd1"])].size == model_folders["sd1"].stat().st_size
    assert found[str(model_folders["sdxl"])].describe().startswith("tiny-sdxl.safetensors · SDXL · model · ")
    assert found[str(model_folders["pickle"])].describe().endswith("refused (pickle)")


def test_pickles_are_listed_as_allowed_when_pickles_are(model_folders: dict[str, Path]) -> None:
    entry = model_scan.scan_file(str(model_folders["pickle"]), allow_pickle=True)
    assert entry.refused is None and entry.kind == "UNKNOWN" and entry.family is None


def test_checkpoint_families_agree_with_diffusers(model_folders: dict[str, Path]) -> None:
    """diffusers' own model-type inference (what from_single_file uses) reads the same files the same way."""
    import torch
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    expected = {"sd1": "v1", "sdxl": "xl_base", "sd2_inpaint": "inpainting_v2", "controlnet": "controlnet"}
    for name, model_type in expected.items():
        header = safetensors_header.read_safetensors_header(model_folders[name])
        shapes = {key: torch.empty(shape, device="meta")
                  for key, shape in safetensors_header.tensor_shapes(header).items()}
        assert infer_diffusers_model_type(shapes) == model_type, name


def test_unknown_is_not_guessed(tmp_path: Path, tiny_models: Any) -> None:
    """A LoRA whose cross-attention width matches no family, a UNet-only checkpoint of odd width: family None."""
    lora = tiny_models.write_safetensors_layout(tmp_path / "sdxl-style-name.safetensors", {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 32),
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (32, 4),
    })
    entry = model_scan.scan_file(str(lora))
    assert (entry.kind, entry.family, entry.few_step) == ("LORA", None, None)
    assert entry.family_label == "family unknown"
    odd = tiny_models.write_safetensors_layout(tmp_path / "odd.safetensors", {UNET + "input_blocks.0.0.weight": (8, 4, 3, 3)})
    assert model_scan.scan_file(str(odd)).family is None
    stated = tiny_models.write_safetensors_layout(tmp_path / "stated.safetensors", {"weird.weight": (2,)},
                               {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})
    assert model_scan.scan_file(str(stated)).family == "SDXL"  # the trainer's metadata says it


def test_few_step_from_the_lcm_guidance_embedding(tmp_path: Path, tiny_models: Any) -> None:
    path = tiny_models.write_safetensors_layout(tmp_path / "lcm.safetensors", {
        UNET + "input_blocks.0.0.weight": (8, 4, 3, 3),
        UNET + "time_embed.cond_proj.weight": (8, 256),
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    })
    entry = model_scan.scan_file(str(path))
    assert (entry.family, entry.few_step, entry.family_label) == ("SD1", True, "SD 1.x few-step")


def test_diffusers_folders_and_hub_caches(
    tmp_path: Path, tiny_models: Any, tiny_sd_model: Path, tiny_sdxl_model: Path
) -> None:
    folders = tmp_path / "models"
    folders.mkdir()
    os.symlink(tiny_sd_model, folders / "tiny-sd")  # a diffusers folder: one entry, its files not listed
    addon, shared = tmp_path / "addon-cache", tmp_path / "hf-cache"
    tiny_models.install_in_hf_cache(tiny_sdxl_model, shared, "tiny-org/tiny-sdxl")
    tiny_models.install_in_hf_cache(tiny_sd_model, shared, "tiny-org/both")
    tiny_models.install_in_hf_cache(tiny_sdxl_model, addon, "tiny-org/both")
    entries, _ = model_scan.scan_all([str(folders)], [(str(addon), "add-on cache"), (str(shared), "Hugging Face cache")])
    found = entries_by_path(entries)
    assert set(found) == {"tiny-org/both", "tiny-org/tiny-sdxl", str(folders / "tiny-sd")}
    assert (found["tiny-org/both"].origin, found["tiny-org/both"].family) == ("add-on cache", "SDXL")
    assert (found["tiny-org/tiny-sdxl"].origin, found["tiny-org/tiny-sdxl"].layout) == ("Hugging Face cache", "hub")
    folder = found[str(folders / "tiny-sd")]
    assert (folder.kind, folder.family, folder.inpainting, folder.layout) == ("CHECKPOINT", "SD1", False,
                                                                               "diffusers folder")


def test_rescan_reads_only_changed_files(
    model_folders: dict[str, Path], tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = model_scan.ScanCache()
    folder = str(model_folders["sd1"].parent)
    first = model_scan.scan_folder(folder, cache=cache)
    read: list[str] = []
    original = model_scan.scan_file
    monkeypatch.setattr(model_scan, "scan_file", lambda path, *args: read.append(str(path)) or original(path, *args))
    assert model_scan.scan_folder(folder, cache=cache) == first and read == []
    tiny_models.write_safetensors_layout(model_folders["sdxl"], tiny_models.LAYOUTS["sd1_controlnet"])  # replaced by another file
    os.utime(model_folders["sdxl"], ns=(1, 1))
    again = entries_by_path(model_scan.scan_folder(folder, cache=cache))
    assert read == [str(model_folders["sdxl"])] and again[str(model_folders["sdxl"])].kind == "CONTROLNET"


def test_standard_hub_cache_matches_huggingface_hub(tmp_path: Path) -> None:
    """The same folder huggingface_hub.constants computes, for each way of setting it (checked in a child
    Python, since huggingface_hub reads the environment once, at import)."""
    import subprocess
    import sys

    cases = [
        {},
        {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HF_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy"), "HF_HOME": str(tmp_path / "home")},
        {"HF_HUB_CACHE": str(tmp_path / "hub"), "HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy")},
    ]
    names = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")
    for case in cases:
        env = {k: v for k, v in os.environ.items() if k not in names} | case
        answer = subprocess.run([sys.executable, "-c", "from huggingface_hub import constants; "
                                 "print(constants.HF_HUB_CACHE)"], env=env, capture_output=True, text=True,
                                check=True).stdout.strip()
        assert hf_cache.standard_hub_cache(env) == answer, case


def test_real_tiny_lora_and_controlnet_files(tmp_path: Path, tiny_models: Any, tiny_sd_model: Path) -> None:
    """Files written by diffusers/peft themselves: a LoRA (save_lora_weights) and a ControlNet (a diffusers
    folder, and one .safetensors with diffusers key names). Their 32-wide cross-attention matches no real
    family, so the family is unknown rather than guessed."""
    lora = tiny_models.build_tiny_lora(tmp_path / "loras" / "tiny", tiny_sd_model)
    controlnet_file = tiny_models.build_tiny_controlnet(tmp_path / "cn" / "tiny", tiny_sd_model, single_file=True)
    entries, _ = model_scan.scan_all([str(tmp_path / "loras"), str(tmp_path / "cn")], [])
    found = {(Path(e.path).name, e.kind, e.family, e.layout) for e in entries}
    assert found == {
        (lora.name, "LORA", None, "single file"),
        ("tiny", "CONTROLNET", None, "diffusers folder"),  # the folder (config.json) is one entry
    }
    entry = model_scan.scan_file(str(controlnet_file))
    assert (entry.kind, entry.family) == ("CONTROLNET", None)


IP_ADAPTER_SD15 = {  # the tensor names and shapes of h94/IP-Adapter's models/ip-adapter_sd15.safetensors
    "image_proj.proj.weight": (3072, 1024),
    "image_proj.norm.weight": (768,),
    "ip_adapter.1.to_k_ip.weight": (320, 768),
    "ip_adapter.1.to_v_ip.weight": (320, 768),
}
IP_ADAPTER_SDXL = {"image_proj.proj.weight": (8192, 1280), "ip_adapter.1.to_k_ip.weight": (640, 2048)}


def test_marigold_and_ip_adapters_are_listed_as_what_they_are(
    tmp_path: Path, tiny_models: Any, tiny_marigold_intrinsics: Path, tiny_marigold_normals: Path, tiny_sd_model: Path
) -> None:
    """Marigold pipelines by their class, IP-Adapters by their image encoder folder or tensor names: never as
    base checkpoints (the model picker offers only ``CHECKPOINT``)."""
    import json

    folders = tmp_path / "models"
    folders.mkdir()
    os.symlink(tiny_marigold_normals, folders / "normals")
    os.symlink(tiny_sd_model, folders / "tiny-sd")
    tiny_models.write_safetensors_layout(folders / "ip-adapter_sd15.safetensors", IP_ADAPTER_SD15)
    tiny_models.write_safetensors_layout(folders / "ip-adapter_sdxl.safetensors", IP_ADAPTER_SDXL)
    ip_repo = tmp_path / "ip-repo"  # h94/IP-Adapter's layout: models/image_encoder + the adapters' weights
    (ip_repo / "models" / "image_encoder").mkdir(parents=True)
    (ip_repo / "models" / "image_encoder" / "config.json").write_text(
        json.dumps({"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model"}))
    tiny_models.write_safetensors_layout(ip_repo / "models" / "ip-adapter_sd15.safetensors", IP_ADAPTER_SD15)
    hub = tmp_path / "hub"
    tiny_models.install_in_hf_cache(tiny_marigold_intrinsics, hub, "prs-eth/marigold-iid-appearance-v1-1")
    tiny_models.install_in_hf_cache(ip_repo, hub, "h94/IP-Adapter")
    entries, _ = model_scan.scan_all([str(folders)], [(str(hub), "Hugging Face cache")])
    kinds = {Path(e.path).name if e.layout != "hub" else e.path: (e.kind, e.family) for e in entries}
    assert kinds == {
        "prs-eth/marigold-iid-appearance-v1-1": ("MARIGOLD_INTRINSICS", None),  # the tiny's 32-wide attention
        "h94/IP-Adapter": ("IP_ADAPTER", None),
        "normals": ("MARIGOLD_NORMALS", None),
        "tiny-sd": ("CHECKPOINT", "SD1"),
        "ip-adapter_sd15.safetensors": ("IP_ADAPTER", "SD1"),
        "ip-adapter_sdxl.safetensors": ("IP_ADAPTER", "SDXL"),
    }
    checkpoints = [e for e in entries if e.kind == "CHECKPOINT"]
    assert [Path(e.path).name for e in checkpoints] == ["tiny-sd"]
    normals = next(e for e in entries if e.kind == "MARIGOLD_NORMALS")
    assert " · Marigold normals (material maps) · " in normals.describe()
