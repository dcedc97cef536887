"""``make bench`` keeps working: a ``--quick`` run of every section (in groups) writes both result files.

No timing is asserted (figures live in bench/results.md, never in tests); this only
checks that the benchmark runs end to end - engine vs raw, roofline, the bpy
subprocess, and the GPU section's code on the CPU (``--gpu-dry-run``) - and that
what it writes is complete and honest (the GPU section says it is a dry run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


# The --quick sections, in groups of about a minute each: one subprocess per group, which pytest-xdist
# spreads over the workers (one run of every section took a third of the suite on its own).
SECTION_GROUPS = {
    "engine": ("engine", "few_step"),
    "roofline": ("roofline", "controlnet", "insight", "scan"),
    "blender": ("blender", "geometry", "bake"),
    "gpu": ("gpu",),
    "upscale": ("upscale",),
    "consistency": ("consistency",),
    "color_match": ("color_match",),
    "maps": ("maps",),
    "reference": ("reference",),
    "sync": ("sync",),
}
HEADINGS = {"engine": "## 1. Engine vs raw", "roofline": "## 2. UNet step roofline", "few_step": "## 3. Few-step path",
            "blender": "## 6. Memory", "gpu": "## 7. GPU", "geometry": "## 8. Depth/normal images",
            "bake": "## 9. Whole-object bake", "controlnet": "## 10. ControlNet overhead",
            "color_match": "## Color Match between views", "maps": "## Material maps (issue 30)",
            "reference": "## Reference images (issue 31)",
            "consistency": "## 15. Whole Object consistency",
            "sync": "## Whole Object SYNC: cost per synchronised step"}


def run_quick(out: Path, *arguments: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "run.py"), "--quick", "--out", str(out), *arguments],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def check_engine(results: dict) -> None:
    case = results["sections"]["engine"]["cases"][0]
    assert case["engine_equals_raw_channels_last"] is True  # the engine's decode path is diffusers', bit for bit
    assert "engine / raw" in case["ratios"] and "engine FP32 / raw" in case["ratios"]
    assert "default_generate_over_raw_fp32" in results["summary"]
    few = results["sections"]["few_step"]
    assert set(few["time_over_raw"]) == {"engine", "engine FP32"}
    engine_dtype = case["engine_dtype"]["engine"]
    assert set(few["component_dtypes"]["engine"].values()) == {engine_dtype}  # nothing fp32 by accident
    assert set(few["component_dtypes"]["engine FP32"].values()) == {"float32"}


def check_roofline(results: dict) -> None:
    roof = results["sections"]["roofline"]
    assert roof["flops"]["gflop"] > 0 and "channels_last fp32" in roof["speedup_vs_nchw"]
    assert "channels_last fp32, unpacked" in roof["variants"] and roof["packed_bytes"] > 0  # as the engine runs it
    assert roof["packed_max_abs_diff_vs_unpacked"]["channels_last fp32"] == 0.0  # packing is exact
    (case,) = results["sections"]["controlnet"]["cases"]
    assert case["per_step_ms"]["plain"] > 0 and case["per_step_ms"]["controlnet"] > 0 and case["ratio_per_step"] > 0
    assert case["controlnet_params_m"] > 0
    assert results["summary"]["controlnet_step_time_over_plain"]
    insight = results["sections"]["insight"]
    assert insight["pixels_identical_with_recording"] is True
    assert {"recorder, nothing on", "filmstrip", "attention", "off after recording"} <= set(insight["ratios_vs_off"])
    scan = results["sections"]["scan"]
    assert scan["files"] == 200 and sum(scan["classified"].values()) == 200 and "unknown" not in str(scan["classified"])


def check_blender(results: dict) -> None:
    blender = results["sections"]["blender"]
    assert blender["warm"]["before_first_step_beyond_text_encoder_s"] is not None
    assert blender["pixels"]["write_byte_2048_ms"]["runs"] >= 1
    (whole,) = blender["whole_object_main_thread"]["sizes"].values()
    assert whole["before_main_s"] > 0 and whole["after_main_s"] > 0 and whole["worker_s"] > 0
    geometry = results["sections"]["geometry"]["sizes"]["128"]
    assert geometry["depth_agreement_with_zbuffer"]["cycles"] > 0.99  # the same frame and depth as a render
    bake = results["sections"]["bake"]
    assert bake["seen_share"] > 0.95 and bake["total_s"]["median"] > 0
    per_view = bake["generation_per_view"]["tiny"]
    assert per_view["grid"] == "128x128" and per_view["grid_s_per_view"] > 0 and per_view["sequential_s_per_view"] > 0


def check_gpu(results: dict) -> None:
    gpu = results["sections"]["gpu"]
    assert gpu["dry_run"] is True and gpu["device"] == "CPU (dry run)"
    contenders = gpu["models"]["tiny SD (dry run)"]["contenders"]
    for name in ("raw +channels_last", "raw +fused QKV", "raw +compile max-autotune", "raw all", "engine"):
        assert "error" not in contenders[name], (name, contenders[name])


def check_upscale(results: dict) -> None:
    tiny_upscale = results["sections"]["upscale"]["tiny"]
    assert tiny_upscale["tiled"]["tiles"] == 9 and tiny_upscale["tiled"]["seconds_per_mp"] > 0
    tiny_x4 = results["sections"]["upscale"]["tiny x4 upscaler"]
    assert tiny_x4["x4_tiled"]["tiles"] == 9 and tiny_x4["x4_untiled"]["tiles"] == 1  # 64 px in: 32-px tiles


def check_consistency(results: dict) -> None:
    case = results["sections"]["consistency"]["cases"]["Cube"]["6"]
    assert set(case) == {"GRID", "SEQUENTIAL", "SYNC 1.0", "SYNC 0.8"}
    for row in case.values():
        assert row["decoded"] > 0 and row["wall_s"] > 0 and row["cpu_s"] > 0  # views that differ somewhere, measured on shared texels
    synced = case["SYNC 1.0"]
    assert synced["latent_texel"] < 1e-5 * synced["latent_max_abs"]  # the synchronised latents agree
    assert "SYNC 1.0" in results["summary"]["whole_object_decoded_disagreement_over_grid"]["Cube 6 views"]


def check_color_match(results: dict) -> None:
    methods = results["sections"]["color_match"]["methods"]
    assert set(methods) == {"GRID", "SEQUENTIAL"}
    for rows in methods.values():
        assert set(rows) == {"NONE", "REINHARD", "HISTOGRAM"}
        for row in rows.values():  # the consistency metric of every run, and its time
            assert 0 < row["disagreement_mean"] < 1 and all(seconds > 0 for seconds in row["seconds"])
        assert rows["REINHARD"]["over_none"] > 0 and rows["HISTOGRAM"]["time_over_none"] > 0
    cost = results["sections"]["color_match"]["cost"]
    assert cost["bake_cpu_s"] > 0 and set(cost["over_bake"]) == {"REINHARD", "HISTOGRAM"}


def check_maps(results: dict) -> None:
    maps = results["sections"]["maps"]
    assert maps["models"] == "tiny" and maps["maps"]["size"] == 128 and maps["maps"]["peak_rss_mb"] > 0
    assert set(maps["over_one_generation"]) == {"albedo + roughness + metallic (one intrinsics run)", "normal",
                                                "height (normals run + integration)", "all five maps"}
    assert all(ratio > 0 for ratio in maps["over_one_generation"].values())


def check_reference(results: dict) -> None:
    cost = results["sections"]["reference"]["cost"]
    assert set(cost["per_image_s"]) == {"plain", "reference", "new picture"}
    assert all(value > 0 for value in cost["per_step_ms"].values())
    assert set(cost["ratio_per_image"]) == {"reference", "new picture"} and cost["switch_back_on_ms"] > 0
    sequential = results["sections"]["reference"]["sequential_view_disagreement"]
    assert sequential["without"] > 0 and sequential["with view 1 as reference"] > 0


def check_sync(results: dict) -> None:
    sync = results["sections"]["sync"]
    parts = sync["per_step_s"]
    assert parts["unet"] > 0 and parts["controlnet"] > 0 and parts["sync"] > 0  # each part timed on the real path
    assert sync["sync_over_unet_and_controlnet"] > 0 and sync["view_groups"] >= 1 and sync["latent_texture"] >= 8
    assert "tiny" in sync["case"] and "6 views" in sync["case"]


CHECKS = {"engine": check_engine, "roofline": check_roofline, "blender": check_blender, "gpu": check_gpu,
          "upscale": check_upscale, "consistency": check_consistency, "color_match": check_color_match, "maps": check_maps,
          "reference": check_reference, "sync": check_sync}


@pytest.mark.parametrize("group", sorted(SECTION_GROUPS))
def test_quick_benchmark_writes_its_sections(tmp_path: Path, group: str) -> None:
    sections = SECTION_GROUPS[group]
    extra = ["--gpu-dry-run"] if group == "gpu" else []
    results = run_quick(tmp_path, "--sections", ",".join(sections), *extra)
    assert set(results["sections"]) == set(sections)
    CHECKS[group](results)
    markdown = (tmp_path / "results.md").read_text()
    for section in sections:
        if section in HEADINGS:
            assert HEADINGS[section] in markdown
    if group == "gpu":
        assert "Dry run on the CPU" in markdown


def test_the_groups_cover_every_section_and_quick_leaves_the_compiles_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every section but the two minutes-long compiles runs in a group above; ``memory`` is the blender
    section's SD-1.5-sized part (left out by --quick)."""
    import argparse

    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))  # bench scripts import each other by name
    import run

    grouped = {section for sections in SECTION_GROUPS.values() for section in sections}
    assert grouped | set(run.QUICK_LEAVES_OUT) | {"memory"} == set(run.SECTIONS)
    quick = argparse.Namespace(quick=True, sections_given=[])
    assert all(run.left_out(section, quick) for section in run.QUICK_LEAVES_OUT)
    assert not run.left_out("compile", argparse.Namespace(quick=True, sections_given=["compile"]))
    assert not run.left_out("avx2", argparse.Namespace(quick=False, sections_given=[]))
    assert not run.left_out("engine", quick)
    import report

    skipped = "\n".join(report._compile({"skipped": run.left_out("compile", quick)}))  # what a --quick page says
    assert "## 4. Compile the Model" in skipped and "Skipped: --quick" in skipped


def test_gpu_section_is_skipped_without_cuda_not_faked(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        return  # with a GPU the section runs for real (make bench)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "run.py"), "--quick", "--sections", "gpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    gpu = json.loads((tmp_path / "results.json").read_text())["sections"]["gpu"]
    assert set(gpu) == {"skipped"} and "no CUDA device" in gpu["skipped"]
    assert "Skipped: no CUDA device" in (tmp_path / "results.md").read_text()


def test_update_measures_only_the_named_sections_and_keeps_the_others(tmp_path: Path) -> None:
    def run(*arguments: str) -> dict:
        done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path),
                               *arguments], capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((tmp_path / "results.json").read_text())

    first = run("--sections", "gpu")
    assert "section_dates" not in first
    updated = run("--sections", "scan", "--update")
    assert set(updated["sections"]) == {"gpu", "scan"} and updated["sections"]["gpu"] == first["sections"]["gpu"]
    assert updated["section_dates"] == {"gpu": first["date"], "scan": updated["date"]}
    assert updated["summary"]["gpu"] == first["summary"]["gpu"]  # the summary covers the kept sections too
    replaced = run("--sections", "gpu")  # without --update: a fresh page
    assert set(replaced["sections"]) == {"gpu"}
