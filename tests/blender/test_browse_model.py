"""The model field's file browser accepts a diffusers folder or a .safetensors file, nothing else."""

import bpy
import pytest


def test_pick_a_file_inside_a_diffusers_folder(settings, tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    assert bpy.ops.latent_textures.browse_model(filepath=str(tmp_path / "model_index.json")) == {"FINISHED"}
    assert settings.model == str(tmp_path)


def test_pick_a_safetensors_checkpoint(settings, tmp_path):
    checkpoint = tmp_path / "dreamy.safetensors"
    checkpoint.write_bytes(b"x")
    assert bpy.ops.latent_textures.browse_model(filepath=str(checkpoint)) == {"FINISHED"}
    assert settings.model == str(checkpoint)


def test_anything_else_is_refused_and_the_field_kept(settings, tmp_path):
    other = tmp_path / "model.ckpt"
    other.write_bytes(b"x")
    with pytest.raises(RuntimeError, match="diffusers model folder"):
        bpy.ops.latent_textures.browse_model(filepath=str(other), directory=str(tmp_path))
    assert settings.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
