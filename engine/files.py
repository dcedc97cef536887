"""Which files of a diffusers model to fetch and load: one rule for the engine and the preferences' Download.

Standard library only and no imports from the add-on: the download worker (a child
process, ``dependencies/download_worker.py``) loads this file by its path, the
engine and ``dependencies/hf_cache.py`` import it. Here, and only here:

* the components never loaded (``SKIPPED_COMPONENTS``);
* what a Hugging Face repo id looks like (``REPO_ID``, ``is_repo_id``);
* the weights variant a run wants (``variant_for``: the device and precision that will run it), and the
  precision ``AUTO`` means there (``run_dtype``; on a CPU from its feature flags, ``cpu_bf16_native``);
* the files of a pipeline (``select_files``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The NSFW classifier and its preprocessor, IP-Adapter image encoders, and the depth estimator of
# SD 2 depth models (their depth comes from Blender's geometry instead).
SKIPPED_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder", "depth_estimator")
# The hub's rule: organisation/name, each 1-96 characters of letters, digits, ``.``, ``_``, ``-``,
# starting with a letter or digit, no ``--`` or ``..``.
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
HALF_VARIANT = "fp16"  # the variant name diffusers repositories publish half-precision weights under
WEIGHT = re.compile(
    r"(?P<base>diffusion_pytorch_model|model|pytorch_model)"
    r"(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.(?P<ext>safetensors|bin|ckpt|pt|pth)"
)
WEIGHT_INDEX = re.compile(
    r"(?P<base>diffusion_pytorch_model|model|pytorch_model)\.(?P<ext>safetensors|bin)\.index"
    r"(?:\.(?P<variant>[A-Za-z0-9_]+))?\.json"
)
CONFIG_SUFFIXES = (".json", ".txt", ".model")
PICKLE_EXTENSIONS = ("bin", "pt", "pth", "ckpt")


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.fullmatch(text)) and ".." not in text and "--" not in text


def variant_for(dtype: str) -> str | None:
    """The weights variant for a run in ``dtype`` (``float16``/``bfloat16``/``float32``, or ``fp16``...).

    Half precision (fp16 or bf16) runs take the ``fp16`` files (half the download; bf16 is
    cast from them); full precision takes the plain files.
    """
    return HALF_VARIANT if dtype.lower().removeprefix("torch.") in ("float16", "bfloat16", "fp16", "bf16") else None


# The CPU instructions that do bf16 matrix maths in hardware: AVX512-BF16 (AMD Zen 4+, Intel Cooper Lake,
# Sapphire Rapids+) and AMX-BF16 (Intel Sapphire Rapids+); named as torch's ``cpu.get_capabilities()`` and
# Linux's /proc/cpuinfo name them. Without them oneDNN emulates bf16, slower than fp32.
BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")
# oneDNN's instruction-set levels below AVX512_CORE_BF16: capped to one of them with ONEDNN_MAX_CPU_ISA
# (an administrator's setting, or a test running as an older CPU), oneDNN emulates bf16 whatever the CPU has.
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_bf16_native(features: Iterable[str], onednn_max_isa: str = "") -> bool:
    """Does a CPU with ``features`` (the names of those it has) run bf16 in hardware for oneDNN, capped to
    ``onednn_max_isa`` (the ``ONEDNN_MAX_CPU_ISA`` environment variable of the process that runs the engine)?"""
    if onednn_max_isa.strip().upper() in ONEDNN_ISAS_WITHOUT_BF16:
        return False
    available = set(features)
    return any(name in available for name in BF16_CPU_FEATURES)


def run_dtype(precision: str, device_type: str, device_name: str = "", bf16_native: bool = False) -> str:
    """The dtype a run uses: ``precision`` (``AUTO``/``FP16``/``BF16``/``FP32``) on ``device_type`` (cuda/mps/cpu).

    ``AUTO``: CUDA bf16 where the card runs it natively, else fp16 (fp32 on GTX 16xx, whose fp16 gives
    black images); MPS fp16; CPU bf16 where the CPU runs it natively (AVX512-BF16 / AMX), else fp32.
    ``bf16_native`` says whether the device (card or CPU) has native bf16.
    """
    if precision != "AUTO":
        return {"FP16": "float16", "BF16": "bfloat16", "FP32": "float32"}[precision]
    if device_type == "cuda":
        if "GTX 16" in device_name:
            return "float32"
        return "bfloat16" if bf16_native else "float16"
    if device_type == "mps":
        return "float16"
    # CPU, SD-1.5-sized (bench/results.md): bf16 makes a whole Generate ~3x faster where the CPU has it.
    return "bfloat16" if bf16_native else "float32"


class FileSelectionError(Exception):
    """The model's files cannot make a pipeline. ``kind``: ``no_weights``, ``pickle`` or ``mismatched``."""

    def __init__(self, kind: str, component: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.component = component


@dataclass(frozen=True)
class FileSelection:
    """The files to fetch/load for a pipeline, and the weights variant (``fp16`` ...) they use."""

    files: tuple[str, ...]
    variant: str | None


def pipeline_components(index: dict[str, Any]) -> list[str]:
    """The component folders ``model_index.json`` names that are loaded (not the skipped ones)."""
    return [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
        and name not in SKIPPED_COMPONENTS
    ]


def select_files(
    filenames: Iterable[str],
    index: dict[str, Any],
    *,
    name: str,
    prefer_variant: str | None,
    allow_pickle: bool,
) -> FileSelection:
    """Pick the files a pipeline needs from a repo's (or folder's) file list.

    Per component folder: its configs/tokenizer files and one set of weights -
    safetensors if there are any (pickle only when allowed), in ``prefer_variant``
    when every weighted component has it, else the plain (full-precision) files,
    else another variant every component has. Root-level checkpoints, Flax/ONNX/OpenVINO
    files, the skipped components and unused formats are left out.

    Raises:
        FileSelectionError: a component has no weights, only pickle weights (not allowed),
            or the components share no variant.
    """
    by_folder: dict[str, list[str]] = {}
    for filename in filenames:
        folder, _, base = filename.replace("\\", "/").rpartition("/")
        if folder and "/" not in folder:
            by_folder.setdefault(folder, []).append(base)

    chosen: list[str] = ["model_index.json"]
    weights: dict[str, dict[str | None, list[str]]] = {}
    ext_by_component: dict[str, str] = {}
    for component in pipeline_components(index):
        files = by_folder.get(component, [])
        chosen += [f"{component}/{f}" for f in files if f.endswith(CONFIG_SUFFIXES) and not WEIGHT_INDEX.fullmatch(f)]
        found: dict[str, dict[str | None, list[str]]] = {}
        for f in files:
            match = WEIGHT.fullmatch(f)
            if match:
                found.setdefault(match["ext"], {}).setdefault(match["variant"], []).append(f)
        if not found:
            cls = str(index[component][1])
            if cls.endswith("Scheduler") or "Tokenizer" in cls:
                continue
            raise FileSelectionError(
                "no_weights", component,
                f"{name} has no PyTorch weights for its {component}; download it again or pick another model.",
            )
        if "safetensors" in found:
            ext = "safetensors"
        elif not allow_pickle:
            raise FileSelectionError(
                "pickle", component, f"The {component} of {name} has only pickle weights (.bin/.ckpt/.pt/.pth)."
            )
        else:
            ext = next(e for e in PICKLE_EXTENSIONS if e in found)
        ext_by_component[component] = ext
        weights[component] = found[ext]

    candidates: list[str | None] = [prefer_variant] if prefer_variant else []
    candidates.append(None)
    candidates += sorted({v for variants in weights.values() for v in variants if v is not None})
    variant = next((v for v in candidates if all(v in variants for variants in weights.values())), "")
    if variant == "":
        raise FileSelectionError(
            "mismatched", "", f"The weights of {name} come in mismatched variants per component; re-save the model."
        )

    for component, variants in weights.items():
        chosen += [f"{component}/{f}" for f in sorted(variants[variant])]
        for f in by_folder.get(component, []):
            match = WEIGHT_INDEX.fullmatch(f)
            if match and match["ext"] == ext_by_component[component] and match["variant"] == variant:
                chosen.append(f"{component}/{f}")
    return FileSelection(tuple(chosen), variant)
