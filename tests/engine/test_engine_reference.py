"""Reference images (IP-Adapter) through diffusers' real load_ip_adapter on the tiny models: strength 0 and off
exactly plain, the image and strength reaching the adapter, the processor order with the engine's own
processors (attention slicing, the insight recorder), clean failed loads, and every pipeline the engine builds."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def picture(seed: int, height: int = 40, width: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)


@pytest.fixture
def reference(engine_api: Any, tiny_ip_adapter: Path) -> Any:
    """``reference(seed=0, strength=0.8, model=tiny_ip_adapter)``: a ``ReferenceSpec`` with a random picture."""

    def make(seed: int = 0, strength: float = 0.8, model: str | Path | None = None) -> Any:
        return engine_api.ReferenceSpec(picture(seed), strength, str(tiny_ip_adapter if model is None else model))

    return make


@pytest.fixture(scope="module")
def processors_module(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".attention_processors")


def unet_processors(engine: Any) -> dict[str, Any]:
    return dict(engine._model.base.unet.attn_processors)


def test_reference_changes_the_pixels_and_off_after_on_restores_them_exactly(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, tiny_ip_adapter: Path
) -> None:
    engine = new_engine()
    plain = engine.generate(make_request(tiny_sd_model)).image
    processors_before = unet_processors(engine)
    styled = engine.generate(make_request(tiny_sd_model, reference=reference(0)))
    assert not np.array_equal(styled.image, plain)
    other = engine.generate(make_request(tiny_sd_model, reference=reference(1))).image
    assert not np.array_equal(other, styled.image)  # a different picture, the same seed: another result
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)  # off: exactly plain
    after = unet_processors(engine)
    assert all(after[name] is processors_before[name] for name in processors_before)  # the very same processors
    assert engine._model.base.unet.encoder_hid_proj is None
    np.testing.assert_array_equal(
        engine.generate(make_request(tiny_sd_model, reference=reference(0))).image, styled.image
    )
    assert engine.load_count == 1  # loading and unloading the adapter never reloads the model
    recipe = styled.recipe["reference"]
    assert recipe["model"] == str(tiny_ip_adapter) and recipe["strength"] == 0.8 and recipe["applied"] is True
    assert recipe["revision"].startswith("sha256:") and styled.ignored == []
    again = engine.generate(make_request(tiny_sd_model))
    assert "reference" not in again.recipe and "reference" not in again.timings
    assert styled.timings["reference"] > 0  # the adapter loaded, the picture encoded


def test_strength_zero_is_exactly_no_reference_and_loads_nothing(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path
) -> None:
    engine = new_engine()
    plain = engine.generate(make_request(tiny_sd_model)).image
    result = engine.generate(make_request(tiny_sd_model, reference=reference(0, strength=0.0)))
    np.testing.assert_array_equal(result.image, plain)
    assert result.recipe["reference"]["applied"] is False and result.recipe["reference"]["strength"] == 0.0
    assert engine.cache.loads["ip_adapter"] == 0  # no encoder read for nothing


def ip_processors(engine: Any, processors_module: Any) -> dict[str, Any]:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    return {name: processors_module.unwrap(p) for name, p in unet_processors(engine).items()
            if isinstance(processors_module.unwrap(p), IPAdapterAttnProcessor2_0)}


def test_the_strength_reaches_the_adapter_also_through_the_recorder(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, engine_api: Any, processors_module: Any
) -> None:
    insight = importlib.import_module(engine_api.__name__ + ".insight")
    engine = new_engine()
    engine.generate(make_request(tiny_sd_model, reference=reference(0, strength=0.37)))
    loaded = ip_processors(engine, processors_module)
    crossed = [n for n in unet_processors(engine) if n.endswith("attn2.processor")]
    assert sorted(loaded) == sorted(crossed) and all(p.scale == [0.37] for p in loaded.values())
    seen: list[tuple[type, list[float]]] = []

    def during_the_run(event: Any) -> None:  # the recorder's wrappers are on now
        for name, processor in unet_processors(engine).items():
            if name.endswith("attn2.processor"):
                seen.append((type(processor), processors_module.unwrap(processor).scale))

    recorder = insight.InsightRecorder(attention=True)
    engine.generate(make_request(tiny_sd_model, reference=reference(0, strength=0.9)), recorder=recorder,
                    on_progress=during_the_run)
    assert seen and all(kind.__name__ == "_RecordingProcessor" and scale == [0.9] for kind, scale in seen)
    assert all(p.scale == [0.9] for p in ip_processors(engine, processors_module).values())


def test_record_attention_with_a_reference_and_after_it(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, engine_api: Any
) -> None:
    insight = importlib.import_module(engine_api.__name__ + ".insight")
    engine = new_engine()
    styled = engine.generate(make_request(tiny_sd_model, reference=reference(0))).image
    recorder = insight.InsightRecorder(attention=True)
    recorded = engine.generate(make_request(tiny_sd_model, reference=reference(0)), recorder=recorder).image
    np.testing.assert_array_equal(recorded, styled)  # recording beside the IP processors changes nothing
    maps = [i for i in recorder.images if i.kind == "attention" and not i.recipe.get("overlay")]
    assert [m.recipe["token"] for m in maps] == ["red", "brick", "wall"]  # the text part of (text, image)
    assert recorder.word_maps.shape == (3, 64, 64) and np.isfinite(recorder.word_maps).all()
    plain = new_engine().generate(make_request(tiny_sd_model)).image
    recorder = insight.InsightRecorder(attention=True)
    after = engine.generate(make_request(tiny_sd_model), recorder=recorder).image  # reference on -> off -> record
    np.testing.assert_array_equal(after, plain)
    assert recorder.word_maps.shape == (3, 64, 64) and np.isfinite(recorder.word_maps).all()


def test_attention_slicing_keeps_its_processors_around_the_adapter(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, engine_api: Any, processors_module: Any
) -> None:
    from diffusers.models.attention_processor import SlicedAttnProcessor

    insight = importlib.import_module(engine_api.__name__ + ".insight")
    engine = new_engine(attention_slicing=True)
    plain = engine.generate(make_request(tiny_sd_model)).image
    before = unet_processors(engine)
    assert all(isinstance(p, SlicedAttnProcessor) for p in before.values())
    styled = engine.generate(make_request(tiny_sd_model, reference=reference(0)), recorder=insight.InsightRecorder(
        attention=True)).image
    during = unet_processors(engine)
    for name, processor in during.items():
        if name.endswith("attn1.processor"):
            assert processor is before[name]  # self-attention keeps its very own sliced processor
        else:
            assert type(processor).__name__ == "IPAdapterAttnProcessor2_0"  # no sliced IP processor in diffusers
    assert not np.array_equal(styled, plain)
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)
    assert all(unet_processors(engine)[name] is processor for name, processor in before.items())


def test_a_failed_load_leaves_the_pipeline_as_it_was(
    new_engine: Any, make_request: Any, engine_api: Any, tiny_models: Any, tiny_sd_model: Path, tmp_path: Path
) -> None:
    broken = tiny_models.build_tiny_ip_adapter(tmp_path / "broken", tiny_sd_model, hidden_scale={3: 2})
    engine = new_engine(attention_slicing=True)  # sliced processors: what load_ip_adapter cannot rebuild itself
    plain = engine.generate(make_request(tiny_sd_model)).image
    base = engine._model.base
    before, components = unet_processors(engine), dict(base.components)
    spec = engine_api.ReferenceSpec(picture(0), 0.8, str(broken))
    with pytest.raises(engine_api.EngineError, match=r"reference.model: the IP-Adapter .*broken.* does not fit"):
        engine.generate(make_request(tiny_sd_model, reference=spec))
    assert all(unet_processors(engine)[name] is processor for name, processor in before.items())
    assert dict(base.components) == components and base.image_encoder is None and base.feature_extractor is None
    assert base.unet.encoder_hid_proj is None and base.unet.config.encoder_hid_dim_type is None
    assert engine._model.reference_adapter is None and not engine.cache.entries("ip_adapter")
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)


def test_an_adapter_of_another_family_is_refused_naming_both_before_anything_changes(
    new_engine: Any, make_request: Any, engine_api: Any, reference: Any, tiny_sdxl_model: Path,
    tiny_ip_adapter_sdxl: Path, tiny_sd_model: Path,
) -> None:
    engine = new_engine()
    plain = engine.generate(make_request(tiny_sdxl_model)).image
    before = unet_processors(engine)
    with pytest.raises(engine_api.EngineError) as raised:
        engine.generate(make_request(tiny_sdxl_model, reference=reference(0)))  # the SD 1.x adapter
    message = str(raised.value)
    assert "reference.model" in message and "32 wide" in message and "model is SDXL (64 wide)" in message
    assert all(unet_processors(engine)[name] is processor for name, processor in before.items())
    assert engine.cache.loads["ip_adapter"] == 0  # refused before its encoder was read
    styled = engine.generate(make_request(tiny_sdxl_model, reference=reference(0, model=tiny_ip_adapter_sdxl)))
    assert not np.array_equal(styled.image, plain)  # SDXL with its own adapter (the shared encoder)
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sdxl_model)).image, plain)
    with pytest.raises(engine_api.EngineError, match=r"model is SD1 \(32 wide\)"):
        engine.generate(make_request(tiny_sd_model, reference=reference(0, model=tiny_ip_adapter_sdxl)))


def test_a_pickled_adapter_is_refused_unless_allowed(
    new_engine: Any, make_request: Any, engine_api: Any, reference: Any, tiny_sd_model: Path, tiny_ip_adapter: Path,
    tmp_path: Path,
) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "models"
    shutil.copytree(tiny_ip_adapter.parent / "image_encoder", folder / "image_encoder")
    tensors = load_file(str(tiny_ip_adapter))
    pickled = folder / "ip-adapter_sd15.bin"
    torch.save({part: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(part + ".")}
                for part in ("image_proj", "ip_adapter")}, pickled)
    with pytest.raises(engine_api.UnsafeModelFormatError, match="pickle"):
        new_engine().generate(make_request(tiny_sd_model, reference=reference(0, model=pickled)))
    allowed = new_engine(allow_pickle=True).generate(make_request(tiny_sd_model, reference=reference(0, model=pickled)))
    safe = new_engine().generate(make_request(tiny_sd_model, reference=reference(0))).image
    np.testing.assert_array_equal(allowed.image, safe)  # the same weights
    encoder = folder / "image_encoder"  # an encoder with pickled weights only, beside a safetensors adapter
    torch.save(load_file(str(encoder / "model.safetensors")), encoder / "pytorch_model.bin")
    (encoder / "model.safetensors").unlink()
    shutil.copy(tiny_ip_adapter, folder / "ip-adapter_sd15.safetensors")
    beside = reference(0, model=folder / "ip-adapter_sd15.safetensors")
    with pytest.raises(engine_api.UnsafeModelFormatError, match="image encoder"):
        new_engine().generate(make_request(tiny_sd_model, reference=beside))


def test_the_default_adapter_comes_from_the_cache_offline_and_is_refused_when_missing(
    new_engine: Any, make_request: Any, engine_api: Any, tiny_models: Any, tiny_sd_model: Path,
    tiny_ip_adapter: Path, tiny_sdxl_model: Path, tiny_ip_adapter_sdxl: Path, tmp_path: Path,
) -> None:
    upscale_models = importlib.import_module(engine_api.__name__ + ".upscale_models")
    spec = engine_api.ReferenceSpec(picture(0), 0.8, "")
    empty = new_engine(offline=True, cache_dir=str(tmp_path / "empty"))
    with pytest.raises(engine_api.ModelNotFoundError, match=r"h94/IP-Adapter.*offline mode is on"):
        upscale_models.check_reference_available(spec, str(tiny_sd_model), empty.options)  # before anything runs
    with pytest.raises(engine_api.ModelNotFoundError, match=r"h94/IP-Adapter.*offline mode is on"):
        empty.generate(make_request(tiny_sd_model, reference=spec))
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    tiny_models.install_in_hf_cache(tiny_ip_adapter.parent.parent, cache, "h94/IP-Adapter", commit=commit)
    cached = new_engine(offline=True, cache_dir=str(cache))
    upscale_models.check_reference_available(spec, str(tiny_sd_model), cached.options)
    result = cached.generate(make_request(tiny_sd_model, reference=spec))
    assert result.recipe["reference"]["model"] == "h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
    assert result.recipe["reference"]["revision"] == commit
    local = new_engine().generate(make_request(tiny_sd_model, reference=engine_api.ReferenceSpec(
        picture(0), 0.8, str(tiny_ip_adapter)))).image
    np.testing.assert_array_equal(result.image, local)  # the same files, read from the hub cache
    sdxl = cached.generate(make_request(tiny_sdxl_model, reference=spec)).recipe["reference"]
    assert sdxl["model"] == "h94/IP-Adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors"
    assert Path(sdxl["image_encoder"]).parts[-2:] == ("models", "image_encoder")  # the shared ViT-H one


def test_sd2_has_no_default_adapter(
    engine: Any, make_request: Any, engine_api: Any, tiny_sd2_v_model: Path
) -> None:
    with pytest.raises(ValueError, match=r"reference.model is empty and there is no default IP-Adapter for SD2"):
        engine.generate(make_request(tiny_sd2_v_model, reference=engine_api.ReferenceSpec(picture(0), 0.5, "")))


def test_under_compile_the_reference_runs_eagerly_and_the_compiled_unet_comes_back(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, pipeline_of: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import functools

    import torch

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # dynamo, no compiler
    try:
        engine = new_engine(torch_compile=True, precision="FP32")
        plain = engine.generate(make_request(tiny_sd_model)).image
        compiled_unet = pipeline_of(engine).unet
        styled = engine.generate(make_request(tiny_sd_model, reference=reference(0)))
        assert any("Compile the Model does not apply" in note for note in styled.ignored)
        eager = new_engine(precision="FP32", pack_weights=False)
        np.testing.assert_array_equal(styled.image, eager.generate(make_request(tiny_sd_model,
                                                                                reference=reference(0))).image)
        assert pipeline_of(engine).unet is compiled_unet  # the adapter went onto the UNet inside it
        np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)
    finally:
        torch._dynamo.reset()


def test_a_lora_joins_and_leaves_while_the_adapter_is_loaded(
    new_engine: Any, make_request: Any, engine_api: Any, reference: Any, tiny_sd_model: Path, tiny_lora: Path
) -> None:
    lora = (engine_api.LoraSpec(str(tiny_lora)),)
    engine = new_engine()
    plain = engine.generate(make_request(tiny_sd_model)).image
    styled = engine.generate(make_request(tiny_sd_model, reference=reference(0))).image
    both = engine.generate(make_request(tiny_sd_model, reference=reference(0), loras=lora)).image
    assert len({plain.tobytes(), styled.tobytes(), both.tobytes()}) == 3
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model, reference=reference(0))).image, styled)
    np.testing.assert_array_equal(engine.generate(make_request(tiny_sd_model)).image, plain)


def test_an_adapter_without_its_image_encoder_is_refused_saying_where_it_looked(
    engine: Any, make_request: Any, engine_api: Any, reference: Any, tiny_sd_model: Path, tiny_ip_adapter: Path,
    tmp_path: Path,
) -> None:
    import shutil

    alone = tmp_path / "adapters" / "ip-adapter_sd15.safetensors"
    alone.parent.mkdir()
    shutil.copy(tiny_ip_adapter, alone)
    with pytest.raises(engine_api.ModelNotFoundError, match=r"image encoder .* image_encoder folder"):
        engine.generate(make_request(tiny_sd_model, reference=reference(0, model=alone)))
    with pytest.raises(engine_api.ModelNotFoundError, match="no IP-Adapter file or folder"):
        engine.generate(make_request(tiny_sd_model, reference=reference(0, model=tmp_path / "missing.safetensors")))


def test_adapter_sources_and_where_their_encoder_is_looked_for(engine_api: Any) -> None:
    ip_adapters = importlib.import_module(engine_api.__name__ + ".ip_adapters")
    split = ip_adapters.split_hub_path
    assert split("h94/IP-Adapter/models/ip-adapter_sd15.safetensors") == (
        "h94/IP-Adapter", "models/ip-adapter_sd15.safetensors")
    assert split("org/name") == ("org/name", "")
    assert split("C:\\adapters\\ip.safetensors") is None and split("/abs/ip.safetensors") is None
    assert split("h94/IP-Adapter/../secret") is None
    where = ip_adapters.encoder_candidates
    assert where("models/ip-adapter_sd15.safetensors") == ["models/image_encoder"]
    assert where("sdxl_models/ip-adapter_sdxl.safetensors") == ["sdxl_models/image_encoder", "models/image_encoder"]
    assert where("sdxl_models/ip-adapter_sdxl_vit-h.safetensors") == ["models/image_encoder",
                                                                       "sdxl_models/image_encoder"]
    assert ip_adapters.default_model("SD1") == "h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
    assert ip_adapters.default_model("SDXL") == "h94/IP-Adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors"


def test_a_wrapper_of_ours_keeps_the_adapter_weights_in_the_unet_and_changes_nothing(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path, processors_module: Any
) -> None:
    import torch

    engine = new_engine()
    engine.generate(make_request(tiny_sd_model, reference=reference(0)))
    pipe = engine._model.base
    (embeds,) = engine.cache.newest("ip_adapter").embeddings.values()  # what the run passed

    def denoise() -> Any:
        return pipe("red brick wall", num_inference_steps=3, height=64, width=64, output_type="latent",
                    generator=torch.Generator().manual_seed(7), ip_adapter_image_embeds=embeds).images

    ip_keys = {k for k in pipe.unet.state_dict() if "to_k_ip" in k}
    assert ip_keys
    unwrapped = denoise()
    with processors_module.wrapped(pipe.unet, lambda name, p: processors_module.ProcessorWrapper(p)) as wrappers:
        assert len(wrappers) == len(pipe.unet.attn_processors)
        # nn.Module wrappers: the IP weights stay submodules of the UNet (moved and offloaded with it)
        assert {k.replace(".inner", "") for k in pipe.unet.state_dict() if "to_k_ip" in k} == ip_keys
        wrapped = denoise()
    torch.testing.assert_close(wrapped, unwrapped, rtol=0, atol=0)
    assert {k for k in pipe.unet.state_dict() if "to_k_ip" in k} == ip_keys


def test_an_adapter_loaded_at_scale_zero_computes_exactly_the_plain_latents(
    new_engine: Any, make_request: Any, reference: Any, tiny_sd_model: Path
) -> None:
    """Why strength 0 may run either way: diffusers skips the image attention at scale 0 and the text attention is
    the default processor's code (the engine loads nothing at 0: no encoder pass, slicing kept everywhere)."""
    import torch

    engine = new_engine()
    engine.generate(make_request(tiny_sd_model))
    pipe = engine._model.base

    def denoise(**extra: Any) -> Any:
        return pipe("red brick wall", num_inference_steps=3, height=64, width=64, output_type="latent",
                    generator=torch.Generator().manual_seed(7), **extra).images

    plain = denoise()
    engine.generate(make_request(tiny_sd_model, reference=reference(0)))
    (embeds,) = engine.cache.newest("ip_adapter").embeddings.values()
    pipe.set_ip_adapter_scale(0.0)
    torch.testing.assert_close(denoise(ip_adapter_image_embeds=embeds), plain, rtol=0, atol=0)


def test_a_cached_repo_with_pickles_beside_the_safetensors_resolves_to_the_safetensors(
    engine_api: Any, tiny_models: Any, tiny_ip_adapter: Path, tmp_path: Path
) -> None:
    """h94/IP-Adapter ships .bin beside most .safetensors: only the safetensors are read (and downloaded)."""
    import shutil

    ip_adapters = importlib.import_module(engine_api.__name__ + ".ip_adapters")
    repo = tmp_path / "repo"
    shutil.copytree(tiny_ip_adapter.parent, repo / "models")
    (repo / "models" / "ip-adapter_sd15.bin").write_bytes(b"not read")
    (repo / "models" / "image_encoder" / "pytorch_model.bin").write_bytes(b"not read")
    cache = tmp_path / "hub"
    tiny_models.install_in_hf_cache(repo, cache, "h94/IP-Adapter", commit="f" * 40)
    files = ip_adapters.resolve("", "SD1", allow_pickle=False, cache_dir=str(cache), offline=True)
    assert files.weights.name == "ip-adapter_sd15.safetensors" and files.encoder.parts[-2:] == ("models",
                                                                                                "image_encoder")
    assert files.revision == "f" * 40 and files.name == "h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
    with pytest.raises(engine_api.UnsafeModelFormatError):
        ip_adapters.resolve("h94/IP-Adapter/models/ip-adapter_sd15.bin", "SD1", allow_pickle=False,
                            cache_dir=str(cache), offline=True)
    # another adapter of a repo whose snapshot holds only some of it (h94's usual case), offline: named as missing
    with pytest.raises(engine_api.ModelNotFoundError, match=r"ip-adapter_plus.safetensors is not in the model caches"):
        ip_adapters.resolve("h94/IP-Adapter/models/ip-adapter_plus.safetensors", "SD1", allow_pickle=False,
                            cache_dir=str(cache), offline=True)
