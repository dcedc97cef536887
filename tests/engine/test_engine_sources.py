"""Model sources: folders, hub repo ids (cache, offline, download progress), single files, pickle refusal."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

SD15_CONFIG_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # what diffusers infers for an SD-1.x file

SD15_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
# The file list of the real stable-diffusion-v1-5 repo.
SD15_FILES = """
.gitattributes README.md model_index.json v1-5-pruned.ckpt v1-5-pruned.safetensors v1-5-pruned-emaonly.safetensors
v1-inference.yaml feature_extractor/preprocessor_config.json safety_checker/config.json
safety_checker/model.fp16.safetensors safety_checker/model.safetensors safety_checker/pytorch_model.bin
safety_checker/pytorch_model.fp16.bin scheduler/scheduler_config.json text_encoder/config.json
text_encoder/model.fp16.safetensors text_encoder/model.safetensors text_encoder/pytorch_model.bin
text_encoder/pytorch_model.fp16.bin tokenizer/merges.txt tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json tokenizer/vocab.json unet/config.json unet/diffusion_flax_model.msgpack
unet/diffusion_pytorch_model.bin unet/diffusion_pytorch_model.fp16.bin unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.non_ema.bin unet/diffusion_pytorch_model.non_ema.safetensors
unet/diffusion_pytorch_model.safetensors vae/config.json vae/diffusion_flax_model.msgpack
vae/diffusion_pytorch_model.bin vae/diffusion_pytorch_model.fp16.bin vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
""".split()
SD15_CONFIGS = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "vae/config.json",
]


@pytest.fixture(scope="module")
def sources(engine_api: Any) -> Any:
    import importlib

    return importlib.import_module(engine_api.__name__ + ".sources")


@pytest.fixture(scope="module")
def file_selection(engine_api: Any) -> Any:
    import importlib

    return importlib.import_module(engine_api.__name__ + ".file_selection")


# --- classify ----------------------------------------------------------------------------------------


def test_classify_each_kind(sources: Any, tiny_sd_model: Path, tmp_path: Path) -> None:
    assert sources.classify(str(tiny_sd_model), allow_pickle=False) == sources.ModelSource("FOLDER", str(tiny_sd_model))
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"x")
    assert sources.classify(f" {checkpoint} ", allow_pickle=False).kind == "SINGLE_FILE"
    assert sources.classify("stabilityai/sdxl-turbo", allow_pickle=False) == sources.ModelSource(
        "HUB", "stabilityai/sdxl-turbo"
    )


@pytest.mark.parametrize(
    "model",
    [
        "{tmp}/missing-folder",
        "{tmp}/missing.safetensors",
        "./relative/missing",
        "//blend-relative/model",
        "a/b/c",
        "nothing",
    ],
)
def test_classify_missing_paths_say_what_is_wrong(engine_api: Any, sources: Any, tmp_path: Path, model: str) -> None:
    with pytest.raises(engine_api.ModelNotFoundError) as raised:
        sources.classify(model.format(tmp=tmp_path), allow_pickle=False)
    assert "repo id" in str(raised.value)


def test_classify_folder_without_model_index(engine_api: Any, sources: Any, tmp_path: Path) -> None:
    with pytest.raises(engine_api.ModelNotFoundError, match=r"model_index\.json"):
        sources.classify(str(tmp_path), allow_pickle=False)


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt", ".pth"])
def test_pickle_checkpoints_are_refused_unless_allowed(
    engine_api: Any, sources: Any, tmp_path: Path, suffix: str
) -> None:
    checkpoint = tmp_path / f"model{suffix}"
    checkpoint.write_bytes(b"x")
    with pytest.raises(engine_api.UnsafeModelFormatError) as raised:
        sources.classify(str(checkpoint), allow_pickle=False)
    assert "arbitrary code" in str(raised.value) and ".safetensors" in str(raised.value)
    assert sources.classify(str(checkpoint), allow_pickle=True).kind == "SINGLE_FILE"


def test_engine_refuses_a_pickle_checkpoint_before_reading_it(
    engine_api: Any, new_engine: Any, make_request: Any, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"import os; os.system('echo pwned')")
    engine = new_engine()
    with pytest.raises(engine_api.UnsafeModelFormatError, match="arbitrary code"):
        engine.generate(make_request(checkpoint))
    assert engine.load_count == 0


# --- which files a pipeline needs --------------------------------------------------------------------


def test_select_files_for_sd15_full_precision(file_selection: Any) -> None:
    selection = file_selection.select_files(SD15_FILES, SD15_INDEX, name="sd15", prefer_variant=None,
                                            allow_pickle=False)
    assert selection.variant is None
    assert sorted(selection.files) == sorted(
        SD15_CONFIGS
        + [
            "text_encoder/model.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    )


def test_select_files_prefers_the_fp16_variant_when_every_component_has_it(file_selection: Any) -> None:
    selection = file_selection.select_files(SD15_FILES, SD15_INDEX, name="sd15", prefer_variant="fp16",
                                            allow_pickle=False)
    assert selection.variant == "fp16"
    weights = sorted(f for f in selection.files if f.endswith(".safetensors"))
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    without_fp16_vae = [f for f in SD15_FILES if f != "vae/diffusion_pytorch_model.fp16.safetensors"]
    fallback = file_selection.select_files(without_fp16_vae, SD15_INDEX, name="x", prefer_variant="fp16",
                                           allow_pickle=False)
    assert fallback.variant is None


def test_one_file_rule_for_the_download_and_the_engine(
    engine_api: Any, sources: Any, file_selection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preferences' Download (a child process) picks exactly the files the engine loads on that device."""
    import importlib.util
    import sys

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # the simulated CPUs' flags alone, also in an emulated run

    package_loader = sys.modules["latent_textures_package_loader"]  # tests/conftest.py loaded it
    files = importlib.import_module(engine_api.__name__ + ".files")
    download = package_loader.import_subpackage("dependencies.download")
    hf_cache = package_loader.import_subpackage("dependencies.hf_cache")
    worker_path = Path(__file__).resolve().parents[2] / "dependencies" / "download_worker.py"
    spec = importlib.util.spec_from_file_location("lt_worker_probe", worker_path)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)  # as the child runs it: by path, outside the package

    gpu = [SimpleNamespace(type="cuda", name="NVIDIA GeForce RTX 4090", capability="8.9"),
           SimpleNamespace(type="cpu", name="x86_64", capability=None)]
    gtx = [SimpleNamespace(type="cuda", name="NVIDIA GeForce GTX 1660", capability="7.5")]
    bf16_cpu = [SimpleNamespace(type="cpu", name="AMD Ryzen 9 7950X", capability=None,
                                features=("avx2", "avx512_bf16", "avx512f"))]
    amx_cpu = [SimpleNamespace(type="cpu", name="Intel Xeon", capability=None, features=("amx_bf16", "amx_tile"))]
    avx2_cpu = [SimpleNamespace(type="cpu", name="Intel Core i7", capability=None, features=("avx2", "fma3"))]
    cases = [  # (device, precision, probed devices, the dtype the engine runs in there)
        ("AUTO", "AUTO", gpu, "bfloat16"), ("CPU", "AUTO", gpu, "float32"),
        ("AUTO", "AUTO", gtx, "float32"), ("AUTO", "FP16", [], "float16"), ("AUTO", "AUTO", [], "float32"),
        ("AUTO", "AUTO", bf16_cpu, "bfloat16"), ("CPU", "AUTO", amx_cpu, "bfloat16"),
        ("AUTO", "AUTO", avx2_cpu, "float32"), ("CPU", "FP32", bf16_cpu, "float32"),
        ("CPU", "AUTO", gtx + bf16_cpu, "bfloat16"),
    ]
    for device, precision, probed, dtype in cases:
        variant = download.download_variant(device, precision, probed)
        assert variant == files.variant_for(dtype), (device, precision, dtype)
        downloaded, _notes = worker.select_files(SD15_FILES, SD15_INDEX, variant)
        loaded = file_selection.select_files(SD15_FILES, SD15_INDEX, name="sd15",
                                             prefer_variant=files.variant_for(dtype), allow_pickle=False)
        assert sorted(downloaded) == sorted(loaded.files)
    assert worker.files.SKIPPED_COMPONENTS == sources.SKIPPED_COMPONENTS == files.SKIPPED_COMPONENTS
    for text in ("org/name", "a" * 96 + "/b", "a" * 97 + "/b", "org--x/y", "../etc"):
        ok = files.is_repo_id(text)
        assert (sources.classify(text, allow_pickle=False).kind == "HUB") if ok else True
        try:
            hf_cache.validate_repo_id(text)
            assert ok, text
        except ValueError:
            assert not ok, text


def test_the_download_takes_the_files_precision_auto_loads_on_this_cpu(
    engine_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real probe (a child Python) reports this CPU; the Download's variant is the one for the dtype the
    engine's Precision Auto resolves here, also with oneDNN capped below bf16 in Blender's environment."""
    import importlib
    import sys

    import torch

    package_loader = sys.modules["latent_textures_package_loader"]
    probe = package_loader.import_subpackage("dependencies.probe")
    download = package_loader.import_subpackage("dependencies.download")
    files = importlib.import_module(engine_api.__name__ + ".files")
    devices = importlib.import_module(engine_api.__name__ + ".devices")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    status = probe.run_probe(sys.executable, probe.search_path_for(str(tmp_path / "site-packages"), sys.path),
                             packages=["torch"])
    assert status.torch_imported and status.build == "CPU"
    cpu = torch.device("cpu")
    for cap in ("", "AVX2"):
        if cap:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        auto = devices.dtype_name(devices.resolve_dtype("AUTO", cpu))
        assert auto == ("bfloat16" if devices.cpu_has_native_bf16() else "float32")
        for device in ("AUTO", "CPU"):
            assert download.download_variant(device, "AUTO", status.devices) == files.variant_for(auto), (cap, auto)
    assert auto == "float32"  # capped: oneDNN would emulate bf16


def test_select_files_keeps_shards_and_the_matching_index(file_selection: Any) -> None:
    files = SD15_CONFIGS + [
        "text_encoder/model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model.bin.index.json",
    ]
    selection = file_selection.select_files(files, SD15_INDEX, name="x", prefer_variant=None, allow_pickle=False)
    unet = sorted(f for f in selection.files if f.startswith("unet/"))
    assert unet == [
        "unet/config.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
    ]


def test_select_files_refuses_pickle_only_components_unless_allowed(engine_api: Any, file_selection: Any) -> None:
    files = [f for f in SD15_FILES if not f.startswith("unet/diffusion_pytorch_model") or f.endswith(".bin")]
    with pytest.raises(engine_api.UnsafeModelFormatError, match="unet"):
        file_selection.select_files(files, SD15_INDEX, name="x", prefer_variant=None, allow_pickle=False)
    selection = file_selection.select_files(files, SD15_INDEX, name="x", prefer_variant=None, allow_pickle=True)
    assert "unet/diffusion_pytorch_model.bin" in selection.files
    assert "vae/diffusion_pytorch_model.safetensors" in selection.files  # safetensors still preferred elsewhere


def test_select_files_notices_missing_weights(engine_api: Any, file_selection: Any) -> None:
    files = [f for f in SD15_FILES if not f.startswith("vae/diffusion")]
    with pytest.raises(engine_api.ModelNotFoundError, match="vae"):
        file_selection.select_files(files, SD15_INDEX, name="x", prefer_variant=None, allow_pickle=False)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"_class_name": ["my_pipeline", "MyPipeline"]}, ["never runs code"]),
        ({"_class_name": "StableDiffusionUpscalePipeline"}, ["StableDiffusionUpscalePipeline", "SDXL", "inpainting"]),
        ({"_class_name": "FluxPipeline"}, ["FluxPipeline"]),
        ({"text_encoder": [None, None]}, ["text_encoder", "refiner"]),
        ({"unet": ["my_unet", "MyUNet"]}, ["custom code", "unet"]),
    ],
)
def test_unsupported_or_custom_pipelines_are_refused(engine_api: Any, sources: Any, change: dict, words: list) -> None:
    with pytest.raises(engine_api.EngineError) as raised:
        sources.check_pipeline_index({**SD15_INDEX, **change}, "org/model")
    for word in words:
        assert word in str(raised.value)


def test_local_folder_with_pickle_weights(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    folder = tmp_path / "pickled"
    StableDiffusionPipeline.from_pretrained(tiny_sd_model, local_files_only=True).save_pretrained(
        folder, safe_serialization=False
    )
    assert list(folder.glob("unet/*.bin"))
    with pytest.raises(engine_api.UnsafeModelFormatError, match="arbitrary code"):
        new_engine().generate(make_request(folder))
    allowed = new_engine(allow_pickle=True).generate(make_request(folder))
    reference = new_engine().generate(make_request(tiny_sd_model))
    np.testing.assert_array_equal(allowed.image, reference.image)


def test_corrupt_weights_become_an_engine_error(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_sd_model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_model, broken)
    for weights in broken.glob("unet/*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    engine = new_engine()
    with pytest.raises(engine_api.EngineError, match="could not be loaded"):
        engine.generate(make_request(broken))
    assert engine.loaded_model() is None


# --- Hugging Face hub: cache, offline, download --------------------------------------------------------


def _http_client() -> Any:
    """The HTTP client module huggingface_hub uses: httpx2 in 2.x, httpx in 1.x."""
    import importlib

    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any attempt to reach the hub is recorded and fails like a dropped connection."""
    import huggingface_hub

    http = _http_client()
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[1] if len(args) > 1 else args))
        raise http.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    return calls


def test_offline_and_not_cached_says_how_to_get_the_model(
    engine_api: Any, new_engine: Any, make_request: Any, tmp_path: Path, no_network: list
) -> None:
    engine = new_engine(offline=True, cache_dir=str(tmp_path / "empty-cache"))
    with pytest.raises(engine_api.ModelNotFoundError) as raised:
        engine.generate(make_request("someorg/some-model"))
    message = str(raised.value)
    assert "someorg/some-model" in message and "offline mode is on" in message and "go online once" in message
    assert str(tmp_path / "empty-cache") in message
    assert no_network == [] and engine.load_count == 0


def test_hf_hub_offline_environment_is_honoured(
    engine_api: Any,
    new_engine: Any,
    make_request: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: list,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = new_engine(offline=False, cache_dir=str(tmp_path))
    with pytest.raises(engine_api.ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        engine.generate(make_request("someorg/some-model"))
    assert no_network == []


def test_cached_repo_loads_offline(
    engine_api: Any,
    new_engine: Any,
    make_request: Any,
    tiny_models: Any,
    tiny_sd_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: list,
) -> None:
    tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path, "tiny-org/tiny-sd")
    engine = new_engine(offline=True, cache_dir=str(tmp_path))
    result = engine.generate(make_request("tiny-org/tiny-sd"))
    reference = new_engine().generate(make_request(tiny_sd_model))
    np.testing.assert_array_equal(result.image, reference.image)
    assert engine.loaded_model().source == "tiny-org/tiny-sd" and result.recipe["model"] == "tiny-org/tiny-sd"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert new_engine(cache_dir=str(tmp_path)).generate(make_request("tiny-org/tiny-sd")).seed == 7
    assert no_network == []


def test_unreachable_hub_falls_back_to_the_cache_or_explains(
    engine_api: Any,
    new_engine: Any,
    make_request: Any,
    tiny_models: Any,
    tiny_sd_model: Path,
    tmp_path: Path,
    no_network: list,
) -> None:
    with pytest.raises(engine_api.ModelNotFoundError, match=r"Could not download someorg/missing.*internet"):
        new_engine(cache_dir=str(tmp_path)).generate(make_request("someorg/missing"))
    assert len(no_network) == 1  # not cached: it did ask the hub (offline was not asked for)
    snapshot = tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path, "tiny-org/tiny-sd")
    assert new_engine(cache_dir=str(tmp_path)).generate(make_request("tiny-org/tiny-sd")).image.shape == (64, 64, 4)
    assert len(no_network) == 1  # complete in the cache: the hub is not asked at all
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()  # incomplete: download, hub fails,
    with pytest.raises(engine_api.EngineError):  # the partial snapshot is tried like diffusers would, and fails
        new_engine(cache_dir=str(tmp_path)).generate(make_request("tiny-org/tiny-sd"))
    assert len(no_network) == 2


def test_repo_ids_resolve_from_the_caches_in_order_before_downloading(
    engine_api: Any,
    new_engine: Any,
    make_request: Any,
    tiny_models: Any,
    tiny_sd_model: Path,
    tiny_sdxl_model: Path,
    tmp_path: Path,
    _empty_standard_hub_cache: Path,
    no_network: list,
) -> None:
    """The add-on's cache, then the standard Hugging Face cache, read-only; the first complete copy wins."""
    addon, standard = tmp_path / "addon", _empty_standard_hub_cache
    snapshot = tiny_models.install_in_hf_cache(tiny_sd_model, standard, "tiny-org/shared")
    before = sorted(p.relative_to(standard) for p in standard.rglob("*"))
    engine = new_engine(cache_dir=str(addon))  # online: still nothing is asked of the hub
    result = engine.generate(make_request("tiny-org/shared"))
    info = engine.loaded_model()
    assert (info.origin, info.files, info.cache_dir) == ("CACHE", str(snapshot), str(standard))
    assert (result.recipe["model_origin"], result.recipe["model_files"], result.recipe["model_cache"]) == (
        "CACHE", str(snapshot), str(standard))
    assert no_network == [] and not addon.exists()  # nothing written to the download cache
    assert sorted(p.relative_to(standard) for p in standard.rglob("*")) == before  # nor to the shared one

    tiny_models.install_in_hf_cache(tiny_sdxl_model, addon, "tiny-org/shared")  # now both have it
    both = new_engine(cache_dir=str(addon))
    both.generate(make_request("tiny-org/shared"))
    assert (both.loaded_model().family, both.loaded_model().cache_dir) == ("SDXL", str(addon))
    # Downloads going to the shared cache: the add-on's cache, read first, still wins.
    shared = new_engine(cache_dir=str(standard), read_cache_dirs=(str(addon), str(standard)))
    shared.generate(make_request("tiny-org/shared"))
    assert shared.loaded_model().cache_dir == str(addon)
    assert no_network == []


def test_a_complete_cached_model_is_not_downloaded_again_in_another_variant(
    sources: Any, tiny_models: Any, tiny_sd_model: Path, tmp_path: Path, no_network: list
) -> None:
    """The preferences' Download took the full-precision files; a half-precision run uses them, offline or not."""
    snapshot = tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path, "tiny-org/tiny-sd")
    found = sources.resolve_hub("tiny-org/tiny-sd", cache_dir=str(tmp_path), offline=False, prefer_variant="fp16",
                                allow_pickle=False)
    assert found.folder == snapshot and no_network == []  # the hub was not even asked
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()  # an unfinished download is completed
    sources.resolve_hub("tiny-org/tiny-sd", cache_dir=str(tmp_path), offline=False, prefer_variant="fp16",
                        allow_pickle=False)
    assert len(no_network) == 1


@pytest.mark.parametrize(
    ("error_name", "words"),
    [
        ("GatedRepoError", ["gated", "licence", "log in"]),
        ("RepositoryNotFoundError", ["no Hugging Face model", "repo id"]),
    ],
)
def test_hub_refusals_are_explained_unless_the_model_is_cached(
    engine_api: Any,
    new_engine: Any,
    make_request: Any,
    tiny_models: Any,
    tiny_sd_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error_name: str,
    words: list,
) -> None:
    import huggingface_hub
    from huggingface_hub import errors

    http = _http_client()
    url = "https://huggingface.co/api/models/tiny-org/tiny-sd"
    response = http.Response(403 if error_name == "GatedRepoError" else 404, request=http.Request("GET", url))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise getattr(errors, error_name)("refused", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    with pytest.raises(engine_api.ModelNotFoundError) as raised:
        new_engine(cache_dir=str(tmp_path)).generate(make_request("tiny-org/tiny-sd"))
    for word in words:
        assert word in str(raised.value)
    tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path, "tiny-org/tiny-sd")
    assert new_engine(cache_dir=str(tmp_path)).generate(make_request("tiny-org/tiny-sd")).seed == 7


def test_list_local_models(
    engine_api: Any, tiny_models: Any, tiny_sd_model: Path, tiny_sdxl_model: Path, tmp_path: Path
) -> None:
    assert engine_api.list_local_models(str(tmp_path / "nothing-here")) == []
    tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path, "tiny-org/tiny-sd")
    tiny_models.install_in_hf_cache(tiny_sdxl_model, tmp_path, "tiny-org/tiny-sdxl")
    tiny_models.install_in_hf_cache(tiny_sd_model / "unet", tmp_path, "tiny-org/just-a-unet")
    found = {m["repo_id"]: m for m in engine_api.list_local_models(str(tmp_path))}
    assert set(found) == {"tiny-org/tiny-sd", "tiny-org/tiny-sdxl", "tiny-org/just-a-unet"}
    assert found["tiny-org/tiny-sd"]["is_pipeline"] and not found["tiny-org/just-a-unet"]["is_pipeline"]
    unique_contents = {p.read_bytes() for p in tiny_sdxl_model.rglob("*") if p.is_file()}  # blobs are shared
    assert found["tiny-org/tiny-sdxl"]["size_bytes"] == sum(len(c) for c in unique_contents)
    largest_first = engine_api.list_local_models(str(tmp_path))[0]
    assert largest_first["repo_id"] == "tiny-org/tiny-sdxl"
    json.dumps(list(found.values()))


def test_models_in_several_caches_are_marked_with_the_copy_a_generate_uses(
    engine_api: Any, tiny_models: Any, tiny_sd_model: Path, tiny_sdxl_model: Path, tmp_path: Path
) -> None:
    import importlib

    models = importlib.import_module(engine_api.__name__ + ".models")
    addon, shared = tmp_path / "addon", tmp_path / "shared"
    tiny_models.install_in_hf_cache(tiny_sd_model, addon, "tiny-org/both")
    tiny_models.install_in_hf_cache(tiny_sdxl_model, shared, "tiny-org/both")
    tiny_models.install_in_hf_cache(tiny_sdxl_model, shared, "tiny-org/shared-only")
    tiny_models.install_in_hf_cache(tiny_sd_model / "unet", addon, "tiny-org/partial")  # not a pipeline here,
    tiny_models.install_in_hf_cache(tiny_sd_model, shared, "tiny-org/partial")  # a whole one in the shared cache
    caches = [(str(addon), "add-on cache"), (str(shared), "Hugging Face cache"), (str(addon), "again")]
    listed = [(m["repo_id"], m["cache"], m["used"]) for m in models.list_models_in_caches(caches)]
    assert listed == [
        ("tiny-org/both", "add-on cache", True),
        ("tiny-org/both", "Hugging Face cache", False),
        ("tiny-org/partial", "add-on cache", False),
        ("tiny-org/partial", "Hugging Face cache", True),
        ("tiny-org/shared-only", "Hugging Face cache", True),
    ]


class FakeHub:
    """A stand-in for huggingface.co serving a local diffusers folder, driving hf's real progress helpers."""

    def __init__(self, folder: Path, repo_id: str, extra: list[str]) -> None:
        self.folder, self.repo_id = folder, repo_id
        self.files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
        self.listing = sorted(self.files) + extra
        self.requested: list[str] = []

    def model_info(self, repo_id: str, **kwargs: Any) -> Any:
        assert repo_id == self.repo_id
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in self.listing])

    def hf_hub_download(self, repo_id: str, filename: str, cache_dir: str | None = None, **kwargs: Any) -> str:
        return str(self.folder / filename)

    def snapshot_download(
        self,
        repo_id: str,
        *,
        cache_dir: str,
        allow_patterns: list[str] | None = None,
        dry_run: bool = False,
        tqdm_class: Any = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> Any:
        if local_files_only:  # the engine looks in the cache first: nothing there before the download
            from huggingface_hub.errors import LocalEntryNotFoundError

            raise LocalEntryNotFoundError("not cached")
        assert allow_patterns is not None
        if dry_run:
            return [SimpleNamespace(filename=f, file_size=self.files[f], will_download=True) for f in allow_patterns]
        from huggingface_hub.utils.tqdm import hf_thread_map

        self.requested = list(allow_patterns)
        storage = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
        (storage / "blobs").mkdir(parents=True)
        snapshot = storage / "snapshots" / ("0" * 40)
        bytes_bar = tqdm_class(total=0, initial=0, unit="B", unit_scale=True, desc="Reconstructing")

        def fetch(name: str) -> None:
            data = (self.folder / name).read_bytes()
            blob = storage / "blobs" / name.replace("/", "_")
            with open(blob, "wb") as f:
                for start in range(0, len(data), 1 << 16):
                    f.write(data[start : start + (1 << 16)])
                    f.flush()
                    bytes_bar.update(len(data[start : start + (1 << 16)]))
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob, snapshot / name)

        hf_thread_map(
            fetch, allow_patterns, desc=f"Fetching {len(allow_patterns)} files", max_workers=2, tqdm_class=tqdm_class
        )
        bytes_bar.total = 100
        bytes_bar.refresh()
        bytes_bar.set_postfix_str("1 MB/s", refresh=False)
        bytes_bar.close()
        return str(snapshot)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, engine_api: Any, tiny_sd_model: Path) -> FakeHub:
    import huggingface_hub

    hub = FakeHub(
        tiny_sd_model,
        "tiny-org/tiny-sd",
        extra=["unet/diffusion_pytorch_model.bin", "unet/diffusion_flax_model.msgpack", "tiny-sd.ckpt", "README.md"],
    )
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", hub.model_info)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(engine_api.__name__ + ".hub.DOWNLOAD_REPORT_INTERVAL", 0.0)
    return hub


def test_download_reports_byte_progress_then_denoising(
    engine_api: Any, new_engine: Any, make_request: Any, fake_hub: FakeHub, tmp_path: Path
) -> None:
    events: list[Any] = []
    engine = new_engine(cache_dir=str(tmp_path))
    result = engine.generate(make_request("tiny-org/tiny-sd"), on_progress=events.append)
    assert result.image.shape == (64, 64, 4) and engine.load_count == 1
    download = [e for e in events if e.stage == "DOWNLOAD"]
    denoise = [e for e in events if e.stage == "DENOISE"]
    expected_total = sum(fake_hub.files[f] for f in fake_hub.requested)
    assert len(download) >= 3 and all(e.total == expected_total and e.preview is None for e in download)
    assert [e.step for e in download] == sorted(e.step for e in download)
    assert download[-1].step == expected_total
    assert events.index(denoise[0]) > events.index(download[-1]) and len(denoise) == 3
    assert "unet/diffusion_pytorch_model.safetensors" in fake_hub.requested
    assert not any(f.endswith((".bin", ".msgpack", ".ckpt", ".md")) for f in fake_hub.requested)


def test_download_can_be_cancelled(
    engine_api: Any, new_engine: Any, make_request: Any, fake_hub: FakeHub, tmp_path: Path
) -> None:
    def stop(event: Any) -> None:
        if event.stage == "DOWNLOAD" and event.step > 0:
            raise engine_api.GenerationCancelled()

    engine = new_engine(cache_dir=str(tmp_path))
    with pytest.raises(engine_api.GenerationCancelled):
        engine.generate(make_request("tiny-org/tiny-sd"), on_progress=stop)
    assert engine.load_count == 0

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(engine_api.GenerationCancelled):
        new_engine(cache_dir=str(tmp_path / "other")).generate(make_request("tiny-org/tiny-sd"), cancel_event=cancel)


# --- single file -------------------------------------------------------------------------------------


def test_single_file_loads_with_configs_from_the_cache(
    engine_api: Any,
    new_engine: Any,
    make_request: Any,
    tiny_single_file: Path,
    single_file_cache: Path,
    tiny_sd_model: Path,
    no_network: list,
) -> None:
    engine = new_engine(offline=True, cache_dir=str(single_file_cache))
    result = engine.generate(make_request(tiny_single_file, steps=2))
    assert engine.loaded_model().source == str(tiny_single_file)
    assert engine.loaded_model().family == "SD1"
    reference = new_engine().generate(make_request(tiny_sd_model, steps=2))
    np.testing.assert_allclose(result.image, reference.image, atol=1e-5)
    assert no_network == []


def test_single_file_offline_without_configs_says_which_repo(
    engine_api: Any, new_engine: Any, make_request: Any, tiny_single_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(engine_api.ModelNotFoundError) as raised:
        new_engine(offline=True, cache_dir=str(tmp_path)).generate(make_request(tiny_single_file))
    assert SD15_CONFIG_REPO in str(raised.value) and "go online once" in str(raised.value)


def test_single_file_without_a_unet_is_refused(
    engine_api: Any, new_engine: Any, make_request: Any, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import save_file

    lora = tmp_path / "style-lora.safetensors"
    save_file({"lora_unet_down_blocks_0.alpha": torch.ones(1)}, str(lora))
    with pytest.raises(engine_api.EngineError, match="LoRA"):
        new_engine(offline=True, cache_dir=str(tmp_path)).generate(make_request(lora))


def test_lora_and_controlnet_repos_resolve_from_the_standard_cache_without_the_hub(
    engine_api: Any,
    tiny_models: Any,
    tiny_sd_model: Path,
    tmp_path: Path,
    _empty_standard_hub_cache: Path,
    no_network: list,
) -> None:
    import importlib

    loras = importlib.import_module(engine_api.__name__ + ".loras")
    lora_file = tiny_models.build_tiny_lora(tmp_path / "lora", tiny_sd_model)
    snapshot = tiny_models.install_in_hf_cache(lora_file.parent, _empty_standard_hub_cache, "tiny-org/lora")
    found = loras.resolve("tiny-org/lora", allow_pickle=False, cache_dir=str(tmp_path / "addon"), offline=False)
    assert found.path == snapshot / lora_file.name and no_network == [] and not (tmp_path / "addon").exists()
