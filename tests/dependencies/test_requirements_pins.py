"""The engine's pins live in one place (dependencies/requirements.py) and requirements-engine.txt agrees."""

import pytest
from deps_support import REPO_ROOT, import_dependencies

requirements = import_dependencies("requirements")
torch_build = import_dependencies("torch_build")


def test_requirements_engine_txt_matches_the_pins():
    """The dev venv (requirements-engine.txt) and an artist's install (the add-on's data) get the same versions."""
    text = (REPO_ROOT / "requirements-engine.txt").read_text(encoding="utf-8")
    assert requirements.parse_requirements_text(text) == list(requirements.ENGINE_PINS)


def test_status_lists_the_packages_the_issue_names():
    names = {requirements.normalize_name(name) for name in requirements.STATUS_PACKAGES}
    assert {"torch", "diffusers", "transformers", "accelerate", "safetensors"} <= names
    pinned = {requirements.normalize_name(pin.name) for pin in requirements.ENGINE_PINS}
    assert names <= pinned


def test_torch_variant_table_is_for_the_pinned_torch():
    """Bumping the torch pin means re-checking which CUDA/ROCm builds that release has."""
    assert requirements.pin("torch").version == torch_build.TORCH_VERSION_FOR_VARIANTS


@pytest.mark.parametrize("line", ["torch>=2.0", "-r other.txt", "torch", "--index-url https://x"])
def test_only_exact_pins_are_accepted(line):
    with pytest.raises(ValueError, match="exact"):
        requirements.parse_requirements_text(f"# comment\n{line}\n")


@pytest.mark.parametrize(
    "requirement, name",
    [("torch==2.13.0+cu130", "torch"), ("huggingface_hub==2.4.0", "huggingface_hub"), ("ltfake", "ltfake")],
)
def test_requirement_name(requirement, name):
    assert requirements.requirement_name(requirement) == name


def test_name_normalisation():
    assert requirements.pin("HuggingFace-Hub").name == "huggingface_hub"
    assert requirements.pin("Pillow").version == "13.0.0"
