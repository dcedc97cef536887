"""The curated models, the Hugging Face cache on disk, which files a download takes, and the offline errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from deps_support import REPO_ROOT, import_dependencies

catalog = import_dependencies("catalog")
hf_cache = import_dependencies("hf_cache")
worker = import_dependencies("download_worker")
download = import_dependencies("download")

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
# The SD 1.5 repository's files (abridged): pickles, variants and single-file checkpoints next to the diffusers folders.
SD15_FILES = [
    ".gitattributes", "README.md", "model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned-emaonly.safetensors",
    "v1-inference.yaml", "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json", "safety_checker/model.safetensors", "safety_checker/pytorch_model.bin",
    "safety_checker/model.fp16.safetensors", "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
]


def test_catalog_has_the_promised_models():
    ids = [model.repo_id for model in catalog.CATALOG]
    assert SD15 in ids and "stabilityai/stable-diffusion-xl-base-1.0" in ids
    assert any(model.family == "SD2" for model in catalog.CATALOG)
    assert any(model.steps <= 4 for model in catalog.CATALOG), "a few-step model for CPU/quick previews"
    for model in catalog.CATALOG:
        assert hf_cache.validate_repo_id(model.repo_id) == model.repo_id
        assert model.download_bytes > 10**9 and model.licence and model.licence_note and model.use
    assert catalog.catalog_entry(SD15.upper()).name == "Stable Diffusion 1.5"


def test_default_scene_model_is_in_the_catalog():
    """properties.model.DEFAULT_MODEL (read as text: properties/ imports bpy) can be downloaded from the list."""
    text = (REPO_ROOT / "properties" / "model.py").read_text(encoding="utf-8")
    assert f'DEFAULT_MODEL = "{SD15}"' in text


def test_select_files_takes_plain_safetensors_and_configs_only():
    files, notes = worker.select_files(SD15_FILES, SD15_INDEX, None)
    assert sorted(files) == sorted([
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ])
    assert notes == []


def test_select_files_sharded_and_fp16_only():
    index = {"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    listing = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
               "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
               "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
               "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"]
    files, notes = worker.select_files(listing, index, None)  # a CPU wants full precision: only fp16 exists
    assert "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors" in files
    assert "unet/diffusion_pytorch_model.safetensors.index.fp16.json" in files
    assert "vae/diffusion_pytorch_model.fp16.safetensors" in files
    assert notes == ["no full-precision weights are published: fp16 weights"]
    assert worker.select_files(listing, index, "fp16")[1] == []  # what a GPU wants anyway


def test_select_files_refuses_pickle_only_and_missing_components():
    index = {"unet": ["diffusers", "UNet2DConditionModel"]}
    with pytest.raises(worker.SelectionError, match="pickle"):
        worker.select_files(["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin"], index, None)
    with pytest.raises(worker.SelectionError, match="no PyTorch weights for its unet"):
        worker.select_files(["model_index.json"], index, None)


@pytest.mark.parametrize("bad", ["../etc", "a/b/c", "https://huggingface.co/a/b", "org--x/y", "", "/abs/path"])
def test_repo_id_validation(bad):
    with pytest.raises(ValueError, match="not a Hugging Face repo id"):
        hf_cache.validate_repo_id(bad)


def fake_cached_model(cache: Path, repo_id: str, weights: bool = True, links: bool = True) -> Path:
    """The hub cache layout as huggingface_hub writes it: blobs, a snapshot of links, refs/main."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = folder / "snapshots" / commit
    files = {"model_index.json": json.dumps(SD15_INDEX).encode(), "scheduler/scheduler_config.json": b"{}",
             "tokenizer/vocab.json": b"{}", "text_encoder/config.json": b"{}", "unet/config.json": b"{}",
             "vae/config.json": b"{}"}
    if weights:
        files.update({"text_encoder/model.safetensors": b"t" * 3000, "unet/diffusion_pytorch_model.safetensors":
                      b"u" * 5000, "vae/diffusion_pytorch_model.safetensors": b"v" * 2000})
    for index, (name, data) in enumerate(files.items()):
        blob = folder / "blobs" / f"blob{index}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if links:
            target.symlink_to(os.path.relpath(blob, target.parent))
        else:
            target.write_bytes(data)
            blob.unlink()
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return folder


def test_cached_model_complete_and_measured_once(tmp_path):
    folder = fake_cached_model(tmp_path, SD15)
    cached = hf_cache.cached_model(str(tmp_path), SD15)
    assert cached.complete and cached.problem is None
    assert cached.folder == str(folder)
    assert 10_000 <= cached.size < 11_000, "blobs counted once, snapshot links not followed"
    assert hf_cache.cached_model(str(tmp_path), SD15, measure=False).size == -1
    assert hf_cache.cached_repo_ids(str(tmp_path)) == [SD15]


def test_cached_model_without_symlinks(tmp_path):
    """Windows without symlink rights: the snapshot holds copies and there are no blobs."""
    fake_cached_model(tmp_path, SD15, links=False)
    cached = hf_cache.cached_model(str(tmp_path), SD15)
    assert cached.complete and cached.size >= 10_000


def test_incomplete_downloads_are_named(tmp_path):
    fake_cached_model(tmp_path, SD15, weights=False)
    cached = hf_cache.cached_model(str(tmp_path), SD15)
    assert not cached.complete and "weights are missing" in cached.problem
    other = "org/half"
    (tmp_path / "models--org--half" / "blobs").mkdir(parents=True)
    (tmp_path / "models--org--half" / "blobs" / "x.incomplete").write_bytes(b"0" * 100)
    half = hf_cache.cached_model(str(tmp_path), other)
    assert not half.complete and half.problem == "the download did not finish" and half.size == 100
    assert hf_cache.cached_model(str(tmp_path), "org/nothing") is None


def test_remove_cached_model(tmp_path):
    fake_cached_model(tmp_path, SD15)
    lock = tmp_path / ".locks" / ("models--" + SD15.replace("/", "--"))
    lock.mkdir(parents=True)
    assert hf_cache.remove_cached_model(str(tmp_path), SD15) > 10_000
    assert hf_cache.cached_model(str(tmp_path), SD15) is None and not lock.exists()
    with pytest.raises(FileNotFoundError, match="not in the cache"):
        hf_cache.remove_cached_model(str(tmp_path), SD15)


def test_download_offline_not_cached_through_the_real_huggingface_hub(tmp_path):
    """HF_HUB_OFFLINE=1 in Blender's environment: the real hub code refuses, without any network, and we say why."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    job = download.DownloadJob(sys.executable, sys.path, SD15, str(tmp_path / "cache"), env=env)
    result = job.run()
    assert not result.ok and not result.cancelled
    assert "is not downloaded and Hugging Face's offline mode is on" in result.message
    assert SD15 in result.message


def test_download_offline_but_cached_is_done(tmp_path):
    fake_cached_model(tmp_path, SD15)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = download.DownloadJob(sys.executable, sys.path, SD15, str(tmp_path), env=env).run()
    assert result.ok, result.message


def test_download_without_huggingface_hub_says_to_install(tmp_path):
    stdlib_only = [p for p in sys.path if "site-packages" not in p]
    result = download.DownloadJob(sys.executable, stdlib_only, SD15, str(tmp_path)).run()
    assert not result.ok and "click Install Dependencies" in result.message


@pytest.mark.parametrize(
    "name, kind",
    [("GatedRepoError", "gated"), ("RepositoryNotFoundError", "not_found"), ("LocalEntryNotFoundError", "offline"),
     ("ConnectError", "network"), ("ValueError", "error")],
)
def test_error_kinds_and_their_words(name, kind):
    error = type(name, (Exception,), {})("boom")
    assert worker.classify_error(error) == kind
    message = download.error_message(kind, SD15, "boom")
    assert SD15 in message
    if kind == "gated":
        assert "HF_TOKEN" in message and "hf auth login" in message


def test_progress_text():
    progress = download.DownloadProgress(done_bytes=1_500_000_000, total_bytes=4_300_000_000)
    assert progress.text() == "1.5 GB of 4.3 GB" and progress.fraction == pytest.approx(0.349, abs=1e-3)
