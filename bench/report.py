"""results.json -> the headline figures and bench/results.md (markdown tables)."""

from __future__ import annotations

from typing import Any

import object_main_thread  # bench/ is on sys.path (bench/run.py)


def _case_label(case: dict[str, Any]) -> str:
    model = "SD-1.5-sized" if case["model"].startswith("SD-1.5") else "tiny"
    return f"{model} {case['size']}x{case['size']}, {case['steps']} steps"


def _ms(seconds: float | None, digits: int = 1) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.{digits}f} ms"


def _s(seconds: float | None, digits: int = 2) -> str:
    return "–" if seconds is None else f"{seconds:.{digits}f} s"


def _gb(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} GB"


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} MB"


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader wants first."""
    sections = results["sections"]
    out: dict[str, Any] = {}
    engine = sections.get("engine")
    if engine:
        # The headline: a default Generate (precision AUTO) over out-of-the-box diffusers in fp32.
        out["default_generate_over_raw_fp32"] = {
            _case_label(c): c["ratios"].get("engine / raw") for c in engine["cases"]
        }
        out["default_generate_dtype"] = next(iter(engine["cases"]), {}).get("engine_dtype", {}).get("engine")
        out["engine_fp32_time_over_raw"] = {
            _case_label(c): c["ratios"].get("engine FP32 / raw") for c in engine["cases"]
        }
    roof = sections.get("roofline")
    if roof:
        out["unet_step_gflop"] = roof["flops"]["gflop"]
        out["sgemm_gflops"] = roof["sgemm"]["gflops"]
        speedups = roof["speedup_vs_nchw"]
        out["cpu_unet_speedup_channels_last"] = speedups.get("channels_last fp32")
        if "channels_last bf16" in speedups:
            out["cpu_unet_speedup_bf16"] = speedups["channels_last bf16"]
        out["unet_gflops"] = {name: v["gflops"] for name, v in roof["variants"].items()}
        out["unet_share_of_matmul_limit"] = roof["share_of_matmul_limit"]
    if roof:
        # The issue-14 headline: the UNet step in the default precision as a share of that precision's matmul rate.
        bf16 = bool(roof.get("bf16_gemm"))
        name = "channels_last bf16" if bf16 else "channels_last fp32"
        out["unet_default_precision"] = "bf16" if bf16 else "fp32"
        out["unet_share_of_matmul_rate_eager"] = roof["share_of_matmul_limit"].get(name)
        if "default_at_512" in roof:
            out["unet_share_of_matmul_rate_eager_512"] = roof["default_at_512"]["step"]["share_of_matmul"]
        for key, layers in (("", roof.get("layers")), ("_512", roof.get("default_at_512"))):
            if layers:
                out[f"unet_kernels_alone_share_of_matmul_rate{key}"] = layers["kernels_alone"]["share_of_matmul"]
        compiled = (sections.get("compile") or {}).get("unet_gflops", {}).get("compiled")
        if compiled:
            limit = (roof["bf16_gemm"] if bf16 else roof["sgemm"])["gflops"]
            out["unet_share_of_matmul_rate_compiled"] = round(compiled / limit, 2)
    few = sections.get("few_step")
    if few:
        out["few_step_time_over_raw"] = few["time_over_raw"]
        out["few_step_seconds"] = {name: s["median"] for name, s in few["samples"].items()}
    comp = sections.get("compile")
    if comp and "cold" in comp:
        out["compile_first_generate_s"] = {"cold": comp["cold"]["first_generate_s"], "warm": comp["warm"]["first_generate_s"]}
        out["compile_s"] = {"cold": comp["cold"]["compile_s"], "warm": comp["warm"]["compile_s"]}
        out["compiled_over_eager"] = comp["warm"]["compiled_over_eager"]
    blender = sections.get("blender")
    if blender:
        warm, cold = blender["warm"], blender["cold"]
        out["enable_addon_ms"] = round(blender["enable_cold_s"]["median"] * 1000, 1)
        out["warm_generate_addon_overhead_ms"] = round(warm["addon_overhead_s"] * 1000, 2)
        out["warm_before_first_step_beyond_text_encoder_ms"] = round(
            warm["before_first_step_beyond_text_encoder_s"] * 1000, 2
        )
        out["cold_generate_s"] = round(cold["total_s"], 2)
        out["cold_addon_overhead_ms"] = round(cold["addon_overhead_s"] * 1000, 1)
        if "memory_sd15" in blender:
            out["sd15_generate_peak_rss_mb"] = round(blender["memory_sd15"]["peak_rss_mb"])
            out["sd15_rss_after_free_mb"] = round(blender["memory_sd15"]["rss_after_free_mb"])
    insight = sections.get("insight")
    if insight:
        out["insight_time_over_off"] = insight["ratios_vs_off"]
    gpu = sections.get("gpu")
    if gpu:
        out["gpu"] = gpu.get("skipped") or {
            label: {name: c.get("its") for name, c in model["contenders"].items()}
            for label, model in gpu["models"].items()
        }
    avx2 = sections.get("avx2")
    if avx2 and "variants" in avx2:
        out["avx2_fp32_unet_share_of_sgemm"] = {name: v["share_of_sgemm"] for name, v in avx2["variants"].items()}
    controlnet = sections.get("controlnet")
    if controlnet:
        out["controlnet_step_time_over_plain"] = {
            f"{c['model']} {c['size']}x{c['size']}": c["ratio_per_step"] for c in controlnet["cases"]
        }
    consistency = sections.get("consistency")
    if consistency and "cases" in consistency:
        out["whole_object_decoded_disagreement_over_grid"] = {
            f"{mesh} {views} views": {label: row["decoded_over_grid"] for label, row in case.items()}
            for mesh, by_views in consistency["cases"].items() for views, case in by_views.items()}
    return out


def render_summary(results: dict[str, Any]) -> str:
    lines = [f"Latent Textures benchmark ({results['runtime_s']} s)"]
    for key, value in results["summary"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _engine(section: dict[str, Any]) -> list[str]:
    names = ["engine", "engine FP32", "raw", "raw+CL"]
    dtypes = next(iter(section["cases"]), {}).get("engine_dtype", {})
    lines = [
        "## 1. Engine vs raw diffusers (wall time per image, CPU)",
        "",
        ("Same model, settings, prompt and seed; runs interleaved, medians; ratios are paired per round "
        "(< 1: the engine is faster). `engine` is a default Generate (precision Auto: "
        f"{dtypes.get('engine', '?')} on this CPU); `engine FP32` the engine with precision FP32; `raw` "
        "out-of-the-box diffusers (fp32); `raw+CL` raw with channels_last applied by hand "
        "(bit-identical to `engine FP32`). The engine keeps a repeated prompt's text embeddings: "
        "raw runs its text encoder every time."),
        "",
        "| case | " + " | ".join(names) + " | **engine (Auto) / raw** | engine FP32 / raw | engine FP32 == raw+CL "
        "| CPU share |",
        "|---|" + "---:|" * len(names) + "---:|---:|---|---:|",
    ]
    for case in section["cases"]:
        cells = []
        for name in names:
            value = case["median_s"].get(name)
            cells.append("–" if value is None else (_ms(value) if value < 1 else _s(value)))
        equal = case.get("engine_equals_raw_channels_last")
        shares = [s["cpu_share"] for s in case["samples"].values() if s.get("cpu_share") is not None]
        lines.append(
            f"| {_case_label(case)} | " + " | ".join(cells)
            + f" | **{case['ratios'].get('engine / raw', '–')}** | {case['ratios'].get('engine FP32 / raw', '–')}"
            + f" | {'bit-identical' if equal else ('–' if equal is None else 'differs')}"
            + f" | {min(shares):.2f} |"
        )
    lines.append("")
    for case in section["cases"]:
        diffs = case.get("max_abs_diff_vs_raw", {})
        if diffs:
            text = ", ".join(f"{name} {value:.1e}" for name, value in diffs.items())
            lines.append(f"- {_case_label(case)}: max |image − raw| (0..1): {text}.")
        pre = case.get("before_first_step_beyond_text_encoder_ms", {})
        if pre:
            text = ", ".join(f"{name} {value:.1f} ms" for name, value in pre.items())
            lines.append(f"  Set-up before the first UNet call, beyond the text encoder: {text}.")
        for name, why in case.get("skipped", {}).items():
            lines.append(f"  {name}: skipped ({why}).")
    if section.get("note"):
        lines.append(f"- {section['note']}")
    return lines + [""]


def _roofline(section: dict[str, Any]) -> list[str]:
    flops = section["flops"]
    by_op = ", ".join(f"{op} {value}" for op, value in flops["gflop_by_op"].items())
    sgemm = section["sgemm"]
    bf16 = section.get("bf16_gemm")
    lines = [
        "## 2. UNet step roofline (CPU)",
        "",
        (f"{section['model']}, {section['size']}x{section['size']} with CFG (batch {section['batch']}): "
        f"**{flops['gflop']} GFLOP per step** ({by_op} GFLOP; counted on the meta device — on the CPU "
        "torch's counter misses the fused SDPA attention)."),
        f"Practical limit, a 4096² matmul run in the same rounds as the steps: **fp32 {sgemm['gflops']} GFLOP/s** "
        f"(best {sgemm['gflops_best']})"
        + (f", bf16 {bf16['gflops']} GFLOP/s (best {bf16['gflops_best']})." if bf16 else
           "; no native bf16 on this CPU.")
        + " Each share is the median over rounds of the step's GFLOP/s over the matmul's in that round "
        "(this VM's speed drifts within minutes).",
        "",
        "| variant | s / step (median) | min | GFLOP/s | share of matmul limit | speed-up vs NCHW | CPU share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in section["variants"].items():
        speedup = section["speedup_vs_nchw"].get(name, 1.0)
        share = section["share_of_matmul_limit"].get(name)
        lines.append(
            f"| {name} | {v['median']:.3f} | {v['min']:.3f} | {v['gflops']} | "
            f"{'–' if share is None else f'{share:.0%}'} | **{speedup:.2f}×** | {v['cpu_share']} |"
        )
    for size, layers in (("256x256", section.get("layers")), ("512x512 (SD 1.5's own size)",
                                                              section.get("default_at_512"))):
        if layers:
            lines += _layer_times(layers, size)
    vae = section.get("vae_decode")
    if vae:
        lines += [
            "",
            f"VAE decode at {vae['size']}x{vae['size']} (the engine converts the VAE too; it packs only the "
            "UNet's weights):",
            "",
            "| variant | s (median) | min | speed-up vs NCHW | CPU share |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, v in vae["variants"].items():
            speedup = vae["speedup_vs_nchw"].get(name, 1.0)
            lines.append(f"| {name} | {v['median']:.3f} | {v['min']:.3f} | **{speedup:.2f}×** | {v['cpu_share']} |")
    lines.append("")
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in section["max_abs_diff_vs_nchw"].items())
    lines.append(f"- One step's output vs NCHW fp32 (max |diff|, output up to {section['output_max_abs']:.2f}): {diffs}.")
    if section.get("packing_speedup"):
        speedups = ", ".join(f"{k} **{v:.2f}×**" for k, v in section["packing_speedup"].items())
        exact = ", ".join(f"{k} {v:.1e}" for k, v in section["packed_max_abs_diff_vs_unpacked"].items())
        lines.append(
            f"- Convolution weights packed once (the engine's default, `engine/packed_weights.py`) vs eager torch "
            f"reordering them at every call (`…, unpacked`), paired: {speedups}; max |diff| {exact}; "
            f"the packed copies take {section['packed_bytes'] / 2**20:.0f} MiB.")
    for name, why in section.get("skipped", {}).items():
        lines.append(f"- {name}: skipped ({why}).")
    if "compile_s" in section:
        lines.append(f"- torch.compile (inductor): {section['compile_s']} s to compile.")
    return lines + [""]


def _layer_times(layers: dict[str, Any], size: str) -> list[str]:
    step, kernels, matmul = layers["step"], layers["kernels_alone"], layers["matmul"]
    lines = [
        "",
        (f"**Where the default precision's step goes at {size}** (`bench/layer_times.py`): every convolution, "
         "linear layer and attention call of one step replayed alone on its own input, interleaved with the step "
         f"and the {layers['dtype']} matmul ({matmul['gflops']} GFLOP/s in these rounds). The step "
         f"({step['gflop']} GFLOP): {step['median']:.3f} s = **{step['share_of_matmul']:.0%} of the matmul** "
         f"(CPU share {step['cpu_share']}); its kernels alone: {kernels['seconds']:.3f} s "
         f"({kernels['share_of_step_time']:.0%} of the step) = **{kernels['share_of_matmul']:.0%} of the matmul**, "
         "the most any fusion of the rest could reach with these kernels. The rest of the step "
         f"({step['median'] - kernels['seconds']:.3f} s) is norms, element-wise ops, copies and Python."),
        "",
        "| kernels | latent | calls | GFLOP | s (median) | GFLOP/s | share of the matmul |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    shown = [g for g in layers["groups"] if g["seconds"] >= 0.01 * kernels["seconds"]]
    for g in shown:
        lines.append(f"| {g['kind']} | {g['where']} | {g['calls']} | {g['gflop']} | {g['seconds']:.4f} | "
                     f"{g['gflops']} | {g['share_of_matmul']:.0%} |")
    rest = [g for g in layers["groups"] if g not in shown]
    if rest:
        lines.append(f"| {len(rest)} smaller groups | | {sum(g['calls'] for g in rest)} | "
                     f"{sum(g['gflop'] for g in rest):.2f} | {sum(g['seconds'] for g in rest):.4f} | | |")
    return lines


def _few_step(section: dict[str, Any]) -> list[str]:
    lines = [
        (f"## 3. Few-step path (CPU): {section['model']}, {section['size']}x{section['size']}, "
        f"{section['scheduler']}, {section['steps']} steps, guidance {section['guidance_scale']:g}"),
        "",
        ("A whole Generate with a new prompt each run (the text encoder runs), interleaved, medians; "
        "`raw` is diffusers' pipeline with `LCMScheduler` in fp32."),
        "",
        "| contender | s / image | time / raw | text encoder | before 1st step | denoise | VAE decode | "
        "rest (overhead) | dtypes (text encoder, UNet, VAE) | CPU share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, sample in section["samples"].items():
        parts = section["breakdown_s"].get(name, {})
        dtypes = section["component_dtypes"].get(name)
        lines.append(
            f"| {name} | {sample['median']:.3f} | {section['time_over_raw'].get(name, 1.0)} | "
            + " | ".join(_s(parts.get(k), 3) for k in ("encode_prompt", "before_first_step", "denoise", "decode"))
            + f" | {_s(parts.get('overhead'), 3)} | {', '.join(dtypes.values()) if dtypes else 'fp32 (diffusers)'}"
            + f" | {sample['cpu_share']} |"
        )
    return lines + ["", "- rest = total − text encoder − denoise − decode (includes the set-up before the first step).", ""]


def _compile(section: dict[str, Any]) -> list[str]:
    lines = ["## 4. Compile the Model (CPU)", ""]
    if "skipped" in section:
        return lines + [f"Skipped: {section['skipped']}.", ""]
    cold, warm = section["cold"], section["warm"]
    lines += [
        (f"{section['model']}, {section['size']}x{section['size']}, {section['steps']} steps, {warm['dtype']}, "
        "inductor with weight freezing; each row a new process (a new Blender session) on one compile cache folder."),
        "",
        "| | first Generate | … of which compiling | compiled / eager (steady) | cache on disk | CPU share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, run in (("cold (empty cache)", cold), ("warm (cache from the cold run)", warm)):
        share = run["samples"]["compiled"]["cpu_share"]
        lines.append(
            f"| {name} | {_s(run['first_generate_s'], 1)} | {_s(run['compile_s'], 1)} | "
            f"**{run['compiled_over_eager']}** | {run['cache_mb']} MB | {share} |"
        )
    lines.append("")
    lines.append(
        f"- Image vs eager (0..1): max |diff| {warm['max_abs_diff_vs_eager']:.1e}, mean {warm['mean_abs_diff_vs_eager']:.1e}."
    )
    if "unet_gflops" in section:
        steps = ", ".join(f"{name} {warm['step_s'][name]:.3f} s ({section['unet_gflops'][name]} GFLOP/s)"
                          for name in warm["step_s"])
        lines.append(f"- One denoising step inside a Generate (UNet with CFG + scheduler): {steps}.")
    return lines + [""]


def _blender(section: dict[str, Any]) -> list[str]:
    cold, warm = section["cold"], section["warm"]
    enable = section["enable_cold_s"]
    lines = [
        "## 5. Blender path (bpy in its own process; tiny model, 64x64, 2 steps, target Material)",
        "",
        "| | cold (first Generate) | warm (median) |",
        "|---|---:|---:|",
        f"| `generate()` to texture in material | {_s(cold['total_s'])} | {_ms(warm['total_s'])} |",
        f"| importing torch/diffusers (first `get_engine`) | {_s(cold['imports_s'])} | – |",
        f"| loading the model | {_s(cold['load_s'])} | {_ms(warm['load_s'], 2)} |",
        f"| engine `generate` (incl. load) | {_s(cold['engine_s'])} | {_ms(warm['engine_s'])} |",
        f"| text encoder | {_ms(cold['text_encoder_s'])} | {_ms(warm['text_encoder_s'], 2)} |",
        (f"| **add-on overhead** (total − imports − engine) | {_ms(cold['addon_overhead_s'])} | "
        f"**{_ms(warm['addon_overhead_s'], 2)}** |"),
        (f"| **before the first denoising step, beyond the text encoder** | "
        f"{_ms(cold['before_first_step_beyond_text_encoder_s'])} | "
        f"**{_ms(warm['before_first_step_beyond_text_encoder_s'], 2)}** |"),
        (f"| … of which inside the engine | {_ms(cold['engine_before_first_step_beyond_text_encoder_s'])} | "
        f"{_ms(warm['engine_before_first_step_beyond_text_encoder_s'], 2)} |"),
        "",
        (f"Enabling the add-on (cold, a fresh process each, median of {len(enable['samples'])}): "
        f"**{enable['median'] * 1000:.1f} ms**; `import bpy`: {section['import_bpy_s']} s."),
        "",
        "Pixel bridge (`bridge/pixels.py`), median ms:",
        "",
        "| | 1024² byte | 1024² float | 2048² byte | 2048² float |",
        "|---|---:|---:|---:|---:|",
    ]
    px = section["pixels"]
    for op in ("write", "read"):
        cells = [f"{px[f'{op}_{kind}_{size}_ms']['median']:.1f}" for size in (1024, 2048) for kind in ("byte", "float")]
        lines.append(f"| {op}_pixels | " + " | ".join(cells) + " |")
    lines += [
        "",
        (f"Writing a result image (new image + pixels + `pack()`): 512² {px['result_image_512_ms']['median']:.0f} ms, "
        f"1024² {px['result_image_1024_ms']['median']:.0f} ms."),
        "",
    ]
    return lines + object_main_thread.report_lines(section.get("whole_object_main_thread"))



def _memory(section: dict[str, Any]) -> list[str]:
    tiny = section["memory_tiny"]
    lines = [
        "## 6. Memory (RSS of the bpy process)",
        "",
        "| | RSS |",
        "|---|---:|",
        f"| after `import bpy` | {_mb(section['rss_after_import_bpy_mb'])} |",
        f"| after enabling the add-on | {_mb(section['rss_after_enable_mb'])} |",
        f"| peak of the first Generate (tiny model: imports torch/diffusers) | {_mb(tiny['peak_rss_cold_generate_mb'])} |",
        f"| after `free_model` (tiny) | {_mb(tiny['rss_after_free_mb'])} |",
    ]
    sd = section.get("memory_sd15")
    if sd:
        lines += [
            f"| before loading the SD-1.5-sized model | {_mb(sd['rss_before_mb'])} |",
            f"| **peak of a generate** (SD-1.5-sized, 256², 1 step, load included) | **{_mb(sd['peak_rss_mb'])}** |",
            (f"| model loaded, after the generate | {_mb(sd['rss_loaded_mb'])} (anonymous {_mb(sd.get('rss_loaded_anon_mb'))}, "
            f"file-backed {_mb(sd.get('rss_loaded_file_mb'))}) |"),
            f"| **after `free_model`** ({_s(sd.get('free_model_s'))}) | **{_mb(sd['rss_after_free_mb'])}** |",
        ]
        lines += [
            "",
            ("File-backed RSS is the safetensors file mapped into the process (diffusers loads weights by mmap): "
            "page cache the kernel can drop under memory pressure, but it shows in a task manager."),
        ]
    return lines + [""]


def _gpu(section: dict[str, Any]) -> list[str]:
    lines = ["## 7. GPU (CUDA)", ""]
    if "skipped" in section:
        return lines + [f"Skipped: {section['skipped']}. Nothing here is estimated.", ""]
    if section.get("dry_run"):
        lines.append("**Dry run on the CPU with the tiny model: checks the code, the figures mean nothing.**")
        lines.append("")
    lines.append(f"{section['device']}, {section['dtype']}.")
    for label, model in section["models"].items():
        lines += [
            "",
            f"### {label}, {model['size']}x{model['size']}, {model['steps']} steps",
            "",
            "| contender | it/s | s / image | time vs raw | peak GPU memory (raw loaded too) | notes |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for name, c in model["contenders"].items():
            if "error" in c:
                lines.append(f"| {name} | – | – | – | – | failed: {c['error']} |")
                continue
            notes = []
            if "compile_s" in c:
                notes.append(f"compile {c['compile_s']} s")
            if c.get("options", {}).get("compile_mode") and "cold_seconds" in c:
                notes.append(f"first image {c['cold_seconds']} s (compiles UNet and VAE)")
            lines.append(
                f"| {name} | {c.get('its') or '–'} | {c['seconds_per_image']} | {c['time_vs_raw']} | "
                f"{_gb(c.get('peak_memory_gb'))} | {', '.join(notes)} |"
            )
    return lines + [""]


def _geometry(section: dict[str, Any]) -> list[str]:
    lines = [
        f"## 8. Depth/normal images ({section['triangles']:,} triangles, median of {section['runs']})",
        "",
        "Wall time (CPU seconds in brackets: comparable when the machine is shared).",
        "",
        "| size | numpy z-buffer (depth + normals) | BVH ray casts (Python loop) | Cycles depth render (EXR) "
        "| depth agreement BVH / Cycles |",
        "|---|---:|---:|---:|---:|",
    ]
    names = ("zbuffer", "bvh_rays", "cycles")
    for size, case in section["sizes"].items():
        seconds, cpu, agree = case["seconds"], case["cpu_seconds"], case["depth_agreement_with_zbuffer"]
        cells = " | ".join(f"{_s(seconds[n]['median'])} ({_s(cpu[n])})" for n in names)
        lines.append(f"| {size}² | {cells} | {agree['bvh_rays']:.1%} / {agree['cycles']:.1%} |")
    return lines + [""]


def _bake(section: dict[str, Any]) -> list[str]:
    lines = ["## 9. Whole-object bake (issue 11)", "",
             f"{section['case']}; {section['covered_texels']} covered texels, {section['seen_share']:.1%} seen; "
             f"the views' depth images (numpy z-buffer, not in the total) took {_s(section['depth_images_s'])}.", "",
             "| stage | wall median | wall min | CPU time median | CPU share |", "|---|---|---|---|---|"]
    for stage in ("texels", "gather", "fill", "total"):
        row = section[f"{stage}_s"]
        lines.append(f"| {stage} | {_s(row['median'])} | {_s(row['min'])} | {_s(row.get('cpu_median'))} | "
                     f"{row['cpu_share']} |")
    for model, row in section.get("generation_per_view", {}).items():
        lines.append(f"- Whole Object diffusion per view, {model} ({row['dtype']}), {row['views']} views of "
                     f"{row['view_size']}², {row['steps']} steps: GRID {_s(row['grid_s_per_view'])} "
                     f"(one {row['grid']} generation), SEQUENTIAL {_s(row['sequential_s_per_view'])} (one inpaint)")
    return lines + ["", "Target: total <= 5 s (issue 11). CPU share < 1: other processes had the core part of "
                    "the time (numpy here runs on one core), so the CPU time is the figure to compare.", ""]


def _controlnet(section: dict[str, Any]) -> list[str]:
    lines = [
        "## 10. ControlNet overhead (time per denoising step, CPU)",
        "",
        ("One engine and model, a DEPTH ControlNet (`from_pipe` on the same components) vs no control; same "
        "prompt, size, steps and seed; runs interleaved; per step = the engine's denoise time / steps; the "
        "ratio is paired per round."),
        "",
        "| case | plain per step | ControlNet per step | ControlNet / plain | UNet / ControlNet params | CPU share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in section["cases"]:
        shares = [v for v in case["cpu_share"].values() if v is not None]
        lines.append(
            f"| {case['model']}, {case['size']}x{case['size']}, {case['steps']} steps, {case['runs']} runs"
            f" | {case['per_step_ms']['plain']:.1f} ms | {case['per_step_ms']['controlnet']:.1f} ms"
            f" | **{case['ratio_per_step']}** | {case['unet_params_m']} M / {case['controlnet_params_m']} M"
            f" | {min(shares) if shares else '–'} |"
        )
    if section.get("note"):
        lines.append(f"- {section['note']}")
    return lines + [""]


def _avx2(section: dict[str, Any]) -> list[str]:
    lines = ["## The fp32 UNet on an AVX2-only CPU, emulated (bench/isa_limit.py)", ""]
    if "skipped" in section:
        return lines + [f"Skipped: {section['skipped']}.", ""]
    sgemm = section["sgemm"]
    lines += [
        (f"This CPU held to AVX2 (`{', '.join(f'{k}={v}' for k, v in section['limits'].items())}`; torch reports "
         f"{section['cpu_capability']}): the AVX2 code paths on this machine's cores. 4096² sgemm under the same "
         f"limit: **{sgemm['gflops']} GFLOP/s**. SD-1.5-sized UNet step at 256² with CFG ({section['gflop']} GFLOP), "
         "fp32, channels_last:"),
        "",
        "| variant | s / step (median) | GFLOP/s | share of the sgemm rate | CPU share |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in section["variants"].items():
        lines.append(f"| {name} | {v['median']:.3f} | {v['gflops']} | **{v['share_of_sgemm']:.0%}** | {v['cpu_share']} |")
    lines += [
        "",
        (f"- `packed` is the engine's default (convolution weights packed once); packed / eager (paired): "
         f"{section.get('packed_over_eager', '–')}, max |diff| {section.get('packed_max_abs_diff', float('nan')):.1e}."),
        (f"- Compiled / eager (paired): {section['compiled_over_eager']}; compiling took {section['compile_s']} s "
         f"(cold, in this process); one step's output vs eager: max |diff| {section['compiled_max_abs_diff']:.1e} "
         f"(output up to {section['output_max_abs']:.2f})."),
        "",
    ]
    return lines


def _section_dates(results: dict[str, Any]) -> list[str]:
    """Where ``--update`` re-measured some sections: which run each section comes from."""
    dates = results.get("section_dates") or {}
    if len(set(dates.values())) < 2:
        return []
    by_date: dict[str, list[str]] = {}
    for name, date in dates.items():
        by_date.setdefault(date, []).append(name)
    runs = "; ".join(f"{date}: {', '.join(names)}" for date, names in sorted(by_date.items()))
    return [(f"**Sections from more than one run** (`--update`; the machine line and load averages are the "
             f"latest run's): {runs}."), ""]


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    lines = [
        "# Latent Textures benchmark",
        "",
        f"{results['date']} · `{results['command'].strip()}` · {results['runtime_s']} s"
        + (" · **--quick (smoke run)**" if results["quick"] else "")
        + (" · **partial: written after each section; the run had not finished**" if results.get("partial") else ""),
        "",
        (f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gb')} GB, {m['os']}; torch threads "
        f"{m.get('torch_threads')}, CPU capability {m.get('cpu_capability')}, native bf16: "
        f"{'yes (' + ', '.join(m['bf16_flags']) + ')' if m.get('bf16_native') else 'no'}; "
        f"CUDA: {m.get('cuda') or 'none'}."),
        f"Python {m['python']}, {versions}.",
        *_section_dates(results),
        (f"Load average at start {results['load_average_start']}, at end {results['load_average_end']} "
        "(\"CPU share\" below: CPU time / (wall time × threads) of the measured runs; < 1 means other "
        "processes had the cores part of the time)."),
        "",
    ]
    sections = results["sections"]
    if "engine" in sections:
        lines += _engine(sections["engine"])
    if "roofline" in sections:
        lines += _roofline(sections["roofline"])
    if "few_step" in sections:
        lines += _few_step(sections["few_step"])
    if "compile" in sections:
        lines += _compile(sections["compile"])
    if "blender" in sections:
        lines += _blender(sections["blender"])
        lines += _memory(sections["blender"])
    if "gpu" in sections:
        lines += _gpu(sections["gpu"])
    if "geometry" in sections:
        lines += _geometry(sections["geometry"])
    if "bake" in sections:
        lines += _bake(sections["bake"])
    if "controlnet" in sections:
        lines += _controlnet(sections["controlnet"])
    if "insight" in sections:
        from insight import render as render_insight  # bench/insight.py (bench/ is the script folder)

        lines += render_insight(sections["insight"])
    if "scan" in sections:
        import model_scan  # bench/ is on sys.path when run.py runs

        lines += ["## Model folder scan (headers only)", "", *model_scan.render(sections["scan"]), ""]
    if "upscale" in sections:
        import upscale  # bench/upscale.py

        lines += upscale.render(sections["upscale"])
    if "consistency" in sections:
        import consistency  # bench/consistency.py

        lines += consistency.render(sections["consistency"])
    if "maps" in sections:
        import material_maps  # bench/material_maps.py

        lines += material_maps.render(sections["maps"])
    if "avx2" in sections:
        lines += _avx2(sections["avx2"])
    if "color_match" in sections:
        import color_match  # bench/color_match.py

        lines += color_match.render(sections["color_match"])
    if "reference" in sections:
        import reference_images  # bench/reference_images.py

        lines += reference_images.render(sections["reference"])
    if "sync" in sections:
        import sync_step  # bench/sync_step.py

        lines += sync_step.render(sections["sync"])
    return "\n".join(lines).rstrip() + "\n"
