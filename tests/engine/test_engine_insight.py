"""Insight recording (filmstrip, attention maps) and prompt tokens on tiny models through the real pipelines."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def insight(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".insight")


@pytest.fixture(scope="module")
def tokens(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".tokens")


@pytest.fixture(params=["sd", "sd2", "sdxl"])
def any_model(request: pytest.FixtureRequest) -> Path:
    name = {"sd": "tiny_sd_model", "sd2": "tiny_sd2_v_model", "sdxl": "tiny_sdxl_model"}[request.param]
    return request.getfixturevalue(name)


# --- filmstrip ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler", ["EULER", "DPM_SOLVER_MULTISTEP"])
def test_filmstrip_one_frame_per_step_and_last_is_the_result(
    engine: Any, make_request: Any, tiny_sd_model: Path, insight: Any, scheduler: str
) -> None:
    recorder = insight.InsightRecorder(filmstrip=True)
    result = engine.generate(make_request(tiny_sd_model, steps=4, scheduler=scheduler), recorder=recorder)
    assert len(recorder.frames) == 4
    assert [f.step for f in recorder.frames] == [1, 2, 3, 4]
    timesteps = [f.timestep for f in recorder.frames]
    assert timesteps == sorted(timesteps, reverse=True) and len(set(timesteps)) == 4
    sigmas = [f.sigma for f in recorder.frames]
    assert sigmas == sorted(sigmas, reverse=True) and all(s > 0 for s in sigmas)
    np.testing.assert_array_equal(recorder.frames[-1].image, result.image[..., :3])
    for frame in recorder.frames:
        assert frame.image.shape == (64, 64, 3) and np.isfinite(frame.image).all()
    assert not np.array_equal(recorder.frames[0].image, recorder.frames[-1].image)  # the estimate moves
    (sheet,) = [i for i in recorder.images if i.kind == "filmstrip"]
    assert sheet.recipe["insight"] == "filmstrip" and sheet.recipe["frames"] == 4
    assert sheet.recipe["timesteps"] == timesteps
    assert sheet.image.ndim == 3 and sheet.image.shape[2] == 4 and sheet.image.dtype == np.float32
    # The sheet holds the last frame, pixel for pixel, at its top-left origin in row 1 (4 frames per row).
    gap = 4
    left = gap + 3 * (64 * 2 + gap)
    np.testing.assert_array_equal(sheet.image[gap : gap + 64, left : left + 64, :3], result.image[..., :3])


def test_x0_from_the_schedule_matches_the_schedulers_own(insight: Any) -> None:
    """DDIM reports its x0 estimate; the schedule-based formula used for DPM/UniPC/PNDM must agree with it."""
    import torch
    from diffusers import DDIMScheduler

    for prediction in ("epsilon", "v_prediction"):
        scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                  prediction_type=prediction, clip_sample=False)
        scheduler.set_timesteps(10)
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn(1, 4, 8, 8, generator=generator)
        output = torch.randn(1, 4, 8, 8, generator=generator)
        t = scheduler.timesteps[3]
        own = scheduler.step(output, t, sample).pred_original_sample
        torch.testing.assert_close(insight.predicted_clean(scheduler, output, t, sample), own)


def test_recording_leaves_the_scheduler_and_callback_as_they_were(
    engine: Any, make_request: Any, tiny_sd_model: Path, insight: Any, pipeline_of: Any
) -> None:
    recorder = insight.InsightRecorder(filmstrip=True, attention=True)
    engine.generate(make_request(tiny_sd_model, steps=2), recorder=recorder)
    pipe = pipeline_of(engine)
    assert "step" not in vars(pipe.scheduler)


# --- attention maps ----------------------------------------------------------------------------------


def test_attention_maps_per_word_and_pixels_unchanged(
    engine: Any, make_request: Any, any_model: Path, insight: Any
) -> None:
    request = make_request(any_model, prompt="red brick wall, mossy stone", steps=2, width=64, height=96)
    plain = engine.generate(request)
    recorder = insight.InsightRecorder(attention=True)
    recorded = engine.generate(request, recorder=recorder)
    np.testing.assert_array_equal(recorded.image, plain.image)  # bit-identical

    words = [w for w, _ in recorder.words]
    assert words == ["red", "brick", "wall", "mossy", "stone"]
    maps = [i for i in recorder.images if i.kind == "attention" and not i.recipe.get("overlay")]
    assert [m.recipe["token"] for m in maps] == words
    for item in maps:
        assert item.image.shape == (96, 64, 4)
        assert np.isfinite(item.image).all()
        assert item.image[..., :3].min() >= 0.0 and item.image[..., :3].max() <= 1.0
        assert item.recipe["peak"] > 0
    # Documented rule: one scale for all words (the largest mean probability), so the strongest word peaks at 1.
    assert recorder.word_maps.shape == (5, 96, 64)
    assert recorder.word_maps.max() == pytest.approx(1.0)
    scale = maps[0].recipe["normalised_by"]
    assert max(m.recipe["peak"] for m in maps) == pytest.approx(scale)
    assert 0 < scale <= 1  # a probability
    (overlay,) = [i for i in recorder.images if i.recipe.get("overlay")]
    assert overlay.recipe["words"] == ", ".join(words)


def test_multi_token_word_is_one_map(engine: Any, make_request: Any, tiny_sd_model: Path, insight: Any) -> None:
    # "zq" is not in the tiny vocabulary: BPE splits it into two pieces, merged into one word.
    recorder = insight.InsightRecorder(attention=True)
    engine.generate(make_request(tiny_sd_model, prompt="zq wall", steps=1), recorder=recorder)
    assert recorder.words == [("zq", [1, 2]), ("wall", [3])]
    assert recorder.word_maps.shape[0] == 2


def test_processors_restored_after_an_error(
    engine: Any, make_request: Any, tiny_sd_model: Path, insight: Any, engine_api: Any, pipeline_of: Any
) -> None:
    engine.generate(make_request(tiny_sd_model, steps=1))
    pipe = pipeline_of(engine)
    before = dict(pipe.unet.attn_processors)

    def stop(event: Any) -> None:
        raise engine_api.GenerationCancelled()

    recorder = insight.InsightRecorder(filmstrip=True, attention=True)
    with pytest.raises(engine_api.GenerationCancelled):
        engine.generate(make_request(tiny_sd_model, steps=3), recorder=recorder, on_progress=stop)
    after = pipe.unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before)
    assert "step" not in vars(pipe.scheduler)


def test_attention_needs_a_prompt(engine: Any, make_request: Any, tiny_sd_model: Path, insight: Any) -> None:
    recorder = insight.InsightRecorder(attention=True)
    with pytest.raises(ValueError, match="record_attention needs a prompt"):
        engine.generate(make_request(tiny_sd_model, prompt=" , "), recorder=recorder)
    assert recorder.images == []


# --- prompt tokens -----------------------------------------------------------------------------------


LONG_PROMPT = ", ".join(f"red brick wall number {i}" for i in range(20)) + ", zzfinalword"


@pytest.mark.parametrize(
    "prompt", ["red brick wall", "Mossy  STONE tiles, rusted-metal 4k!!", "Café crème brûlée", LONG_PROMPT, ""]
)
def test_token_count_matches_the_tokenizer(tiny_sd_model: Path, tokens: Any, prompt: str) -> None:
    from transformers import CLIPTokenizer

    folder = tiny_sd_model / "tokenizer"
    reference = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    counted = tokens.count_tokens(folder, prompt)
    assert counted.tokens == reference.tokenize(prompt)
    assert counted.window == reference.model_max_length - 2 == 75


def test_long_prompt_reports_the_ignored_words(tiny_sd_model: Path, tokens: Any) -> None:
    from transformers import CLIPTokenizer

    folder = tiny_sd_model / "tokenizer"
    counted = tokens.count_tokens(folder, LONG_PROMPT)
    assert counted.over and counted.count > 75
    assert counted.ignored[-1] == "zzfinalword"
    # What the encoder really reads: the ignored words are exactly those the truncated ids leave out.
    reference = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    kept = reference(LONG_PROMPT, truncation=True, max_length=77).input_ids[1:-1]
    kept_text = reference.decode(kept)
    assert "zzfinalword" not in kept_text.replace(" ", "")
    first_ignored = next(w for w in counted.words if w.tokens[-1] >= 75)
    assert all(i < 75 for w in counted.words if w is not first_ignored and w.tokens[-1] < 75 for i in w.tokens)


def test_tokenizer_folders_of_models(tiny_sd_model: Path, tiny_sdxl_model: Path, tokens: Any, tmp_path: Path,
                                     tiny_models: Any) -> None:
    assert tokens.tokenizer_folders(str(tiny_sd_model)) == [tiny_sd_model / "tokenizer"]
    assert tokens.tokenizer_folders(str(tiny_sdxl_model)) == [
        tiny_sdxl_model / "tokenizer", tiny_sdxl_model / "tokenizer_2"
    ]
    assert tokens.tokenizer_folders("org/not-cached", cache_dir=str(tmp_path)) == []
    tiny_models.install_in_hf_cache(tiny_sd_model, tmp_path, "org/tiny")
    (folder,) = tokens.tokenizer_folders("org/tiny", cache_dir=str(tmp_path))
    assert tokens.count_tokens(folder, "red wall").tokens == ["red</w>", "wall</w>"]


def test_token_counting_loads_no_torch(tiny_sd_model: Path) -> None:
    """The panel counts tokens on Blender's main thread: only the tokenizer files, never torch/transformers."""
    import subprocess
    import sys

    script = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import import_engine; e = import_engine(); "
        "import importlib; t = importlib.import_module(e.__name__ + '.tokens'); "
        f"print(t.count_tokens({str(tiny_sd_model / 'tokenizer')!r}, 'red wall').count, "
        "'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False", "False"]


# --- sharp live preview (TAESD) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_autoencoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``AutoencoderTiny`` (the TAESD architecture) built from its config and saved like a download."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    )
    folder = tmp_path_factory.mktemp("taesd")
    vae.save_pretrained(folder)
    return folder


def test_tiny_decoder_preview_is_full_size_and_changes_no_pixels(
    new_engine: Any, make_request: Any, tiny_sd_model: Path, tiny_autoencoder: Path
) -> None:
    engine = new_engine()
    request = make_request(tiny_sd_model, width=64, height=96)
    linear: list[Any] = []
    plain = engine.generate(request, on_progress=linear.append)
    assert linear[-1].preview.shape == (12, 8, 3)  # one pixel per latent pixel
    engine.set_preview_decoder("TAESD", source=str(tiny_autoencoder))
    sharp: list[Any] = []
    result = engine.generate(request, on_progress=sharp.append)
    assert [e.step for e in sharp] == [1, 2, 3]
    for event in sharp:
        assert event.preview.shape == (96, 64, 3) and event.preview.dtype == np.float32
        assert np.isfinite(event.preview).all() and 0 <= event.preview.min() and event.preview.max() <= 1
    np.testing.assert_array_equal(result.image, plain.image)


def test_tiny_decoder_offline_and_not_cached_falls_back_to_linear(
    new_engine: Any, make_request: Any, tiny_sd_model: Path, tmp_path: Path
) -> None:
    engine = new_engine(offline=True, cache_dir=str(tmp_path))
    engine.set_preview_decoder("TAESD")
    events: list[Any] = []
    engine.generate(make_request(tiny_sd_model), on_progress=events.append)
    assert events[-1].preview.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="preview decoder must be one of"):
        engine.set_preview_decoder("SHARPEST")
