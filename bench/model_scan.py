"""Section ``scan``: scanning a folder of 200 model files, headers only (issue 15: target <= 100 ms).

The files are sparse: each has a real-sized header (as many tensors, with names as long, as the
real file of its kind) and the full real file size, but no data blocks on disk. The mix is what an
artist's ComfyUI folder might hold: 100 SD 1.x checkpoints (1131 tensors, 2.1 GB each), 40 SDXL
(2515 tensors, 6.9 GB), 50 LoRAs (792 tensors, 144 MB), 10 ControlNets (340 tensors, 1.4 GB).

Measured: a first scan (fresh cache; the headers are in the OS page cache because they were just
written - a cold disk adds its seek time per file) and a rescan (nothing changed: one ``stat`` each).

    python bench/model_scan.py [--files 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent

# kind -> (share of the files, tensor count, file size in bytes, family-deciding tensors)
MIX = {
    "sd1_checkpoint": (0.50, 1131, 2_132_856_686, {
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 768),
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    }),
    "sdxl_checkpoint": (0.20, 2515, 6_938_078_334, {
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,),
        "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    }),
    "sdxl_lora": (0.25, 792, 143_999_064, {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (32, 2048),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (32, 1280),
    }),
    "sd1_controlnet": (0.05, 340, 1_445_157_124, {
        "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
    }),
}


def _header(tensors: int, size: int, deciding: dict[str, tuple[int, ...]], kind: str) -> bytes:
    """A header of ``tensors`` entries whose data fills ``size`` bytes (names as long as real ones)."""
    names = dict(deciding)
    prefix = "lora_unet_output_blocks" if "lora" in kind else "model.diffusion_model.output_blocks"
    if kind.endswith("controlnet"):
        prefix = "control_model.input_blocks"
    index = 0
    while len(names) < tensors:
        names[f"{prefix}.{index // 40}.1.transformer_blocks.{index % 40}.attn1.to_q.weight"] = (320, 320)
        index += 1
    header: dict[str, Any] = {}
    payload = size - 200_000  # leave room for the header itself
    step = payload // tensors
    for i, (name, shape) in enumerate(names.items()):
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [i * step, (i + 1) * step]}
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    return raw + b" " * (-len(raw) % 8)


def make_files(folder: Path, count: int) -> dict[str, int]:
    """``count`` sparse model files in ComfyUI-like subfolders; returns how many of each kind."""
    made: dict[str, int] = {}
    remaining = count
    for n, (kind, (share, tensors, size, deciding)) in enumerate(MIX.items()):
        number = remaining if n == len(MIX) - 1 else round(count * share)
        remaining -= number
        made[kind] = number
        raw = _header(tensors, size, deciding, kind)
        data_end = json.loads(raw)  # the last tensor's end is where the file's data ends
        end = max(v["data_offsets"][1] for k, v in data_end.items() if k != "__metadata__")
        sub = folder / ("loras" if "lora" in kind else "controlnet" if "controlnet" in kind else "checkpoints")
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(number):
            path = sub / f"{kind}-{i:03d}.safetensors"
            with open(path, "wb") as handle:
                handle.write(struct.pack("<Q", len(raw)) + raw)
                handle.truncate(8 + len(raw) + end)  # sparse: the size is real, the data takes no disk
    return made


def _model_scan() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    from package_loader import import_subpackage

    return import_subpackage("dependencies.model_scan")


def run(files: int = 200, runs: int = 5) -> dict[str, Any]:
    scan = _model_scan()
    with tempfile.TemporaryDirectory(prefix="lt-scan-bench-") as scratch:
        folder = Path(scratch)
        made = make_files(folder, files)
        header_bytes = sum(8 + struct.unpack("<Q", open(p, "rb").read(8))[0] for p in folder.rglob("*.safetensors"))
        first, first_cpu, rescan = [], [], []
        entries: list[Any] = []
        for _ in range(runs):
            cache = scan.ScanCache()
            start, start_cpu = time.perf_counter(), time.process_time()
            entries = scan.scan_folder(str(folder), cache=cache)
            first.append(time.perf_counter() - start)
            first_cpu.append(time.process_time() - start_cpu)
            start = time.perf_counter()
            scan.scan_folder(str(folder), cache=cache)
            rescan.append(time.perf_counter() - start)
        # The same headers parsed whole with json.loads (what reading them naively would cost), once.
        start_cpu = time.process_time()
        for path in folder.rglob("*.safetensors"):
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                json.loads(handle.read(length))
        json_cpu = time.process_time() - start_cpu
        kinds: dict[str, int] = {}
        for entry in entries:
            key = f"{entry.family or 'unknown'} {entry.kind}"
            kinds[key] = kinds.get(key, 0) + 1
    return {
        "files": files,
        "made": made,
        "classified": kinds,
        "header_mb": round(header_bytes / 1e6, 1),
        "apparent_size_gb": round(sum(MIX[k][2] * n for k, n in made.items()) / 1e9, 1),
        "first_scan_ms": {"median": round(statistics.median(first) * 1000, 1), "runs": len(first),
                          "all": [round(t * 1000, 1) for t in first]},
        # CPU time is what the scan costs on an idle machine (wall time also waits for other processes).
        "first_scan_cpu_ms": {"median": round(statistics.median(first_cpu) * 1000, 1), "runs": len(first_cpu)},
        "full_json_parse_cpu_ms": round(json_cpu * 1000, 1),
        "rescan_ms": {"median": round(statistics.median(rescan) * 1000, 1), "runs": len(rescan)},
        "target_ms": 100,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def render(section: dict[str, Any]) -> list[str]:
    first, rescan = section["first_scan_ms"], section["rescan_ms"]
    return [
        f"- {section['files']} files ({section['apparent_size_gb']} GB of checkpoints, LoRAs and ControlNets; "
        f"{section['header_mb']} MB of headers): first scan {first['median']} ms wall, "
        f"{section['first_scan_cpu_ms']['median']} ms CPU (median of {first['runs']}; target {section['target_ms']} ms), "
        f"rescan {rescan['median']} ms; parsing the same headers whole with json.loads: "
        f"{section['full_json_parse_cpu_ms']} ms CPU; load average {section['load_average']} on {section['cpu_count']} CPUs.",
        f"- Classified: {', '.join(f'{n} {k}' for k, n in sorted(section['classified'].items()))}.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    section = run(args.files, args.runs)
    print(json.dumps(section, indent=2))
    print("\n".join(render(section)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
