"""The exact pip command lines, pip's environment and reading pip's output (pure)."""

import pytest
from deps_support import import_dependencies

pip = import_dependencies("pip")
install = import_dependencies("install")
tb = import_dependencies("torch_build")
process = import_dependencies("process")

PY = "/blender/4.2/python/bin/python3.11"
FOLDERS = dict(python=PY, target="/u/site-packages", staging="/u/site-packages-staging", temp_dir="/u/pip-tmp")


def cuda_build():
    facts = tb.SystemFacts("Linux", "x86_64", (tb.NvidiaGpu("RTX 4090", 24564, (8, 9)),), "580", (13, 0))
    return tb.choose_torch_build(facts)


def test_engine_install_command_exactly():
    plan = install.engine_plan(build=cuda_build(), **FOLDERS)
    command = pip.pip_install_command(
        pip.PipInstall(plan.python, plan.staging, plan.requirements, plan.source, (26, 3))
    )
    assert command == [
        PY, "-m", "pip", "install",
        "--target", "/u/site-packages-staging",
        "--no-input", "--disable-pip-version-check", "--no-warn-script-location",
        "--only-binary", ":all:",
        "--progress-bar", "raw",
        "--root-user-action", "ignore",
        "--extra-index-url", "https://download.pytorch.org/whl/cu130",
        "torch==2.13.0+cu130", "diffusers==0.42.1", "transformers==5.24.0", "accelerate==1.15.0",
        "safetensors==0.8.0", "peft==0.21.2", "huggingface_hub==2.4.0", "pillow==13.0.0", "numpy==1.26.4",
    ]


def test_old_pip_gets_no_raw_progress():
    """Blender 4.2 ships pip 23.2, which does not know --progress-bar raw."""
    command = pip.pip_install_command(pip.PipInstall(PY, "/t", ("ltfake==1.0",), pip.PackageSource(), (23, 2, 1)))
    assert command[command.index("--progress-bar") + 1] == "off"
    assert "--root-user-action" in command
    ancient = pip.pip_install_command(pip.PipInstall(PY, "/t", ("x",), pip.PackageSource(), (21, 0)))
    assert "--root-user-action" not in ancient


def test_local_wheels_need_no_network():
    source = pip.PackageSource(find_links=("/wheels",), no_index=True)
    assert source.arguments() == ["--no-index", "--find-links", "/wheels"]
    assert not source.needs_network
    assert pip.PackageSource(find_links=("file:///wheels",), no_index=True).needs_network is False
    assert pip.PackageSource(find_links=("http://127.0.0.1:9/links",), no_index=True).needs_network
    assert pip.PackageSource().needs_network


def test_no_index_keeps_the_torch_index_out():
    plan = install.engine_plan(build=cuda_build(), source=pip.PackageSource(find_links=("/w",), no_index=True),
                               **FOLDERS)
    assert plan.source.arguments() == ["--no-index", "--find-links", "/w"]


def test_mirror_index_and_torch_index_together():
    plan = install.engine_plan(build=cuda_build(), source=pip.PackageSource(index_url="https://mirror/simple"),
                               **FOLDERS)
    assert plan.source.arguments() == [
        "--index-url", "https://mirror/simple", "--extra-index-url", "https://download.pytorch.org/whl/cu130",
    ]


def test_cpu_plan_needs_less_free_space_than_cuda():
    cpu = install.engine_plan(build=tb.choose_torch_build(tb.SystemFacts("Linux", "x86_64")), **FOLDERS)
    assert cpu.requirements[0] == "torch==2.13.0+cpu"
    assert cpu.min_free_bytes < install.engine_plan(build=cuda_build(), **FOLDERS).min_free_bytes


def test_ensurepip_bootstrap_commands():
    assert pip.ensurepip_commands(PY) == [
        [PY, "-m", "ensurepip", "--upgrade", "--default-pip"],
        [PY, "-m", "ensurepip", "--upgrade", "--default-pip", "--user"],
    ]
    assert pip.pip_check_command(PY) == [PY, "-m", "pip", "--version"]


def test_pip_environment_drops_what_breaks_target_installs():
    base = {"PATH": "/bin", "PIP_USER": "1", "PIP_TARGET": "/x", "PIP_REQUIRE_VIRTUALENV": "1",
            "PYTHONPATH": "/other/python", "PIP_INDEX_URL": "https://mirror/simple", "HF_TOKEN": "hf_x"}
    env = pip.pip_environment(base, "/u/pip-tmp")
    assert "PIP_USER" not in env and "PIP_TARGET" not in env and "PIP_REQUIRE_VIRTUALENV" not in env
    assert "PYTHONPATH" not in env
    assert env["PIP_INDEX_URL"] == "https://mirror/simple"  # a mirror the user configured is respected
    assert env["TMPDIR"] == env["TEMP"] == env["TMP"] == "/u/pip-tmp"
    assert env["PYTHONUTF8"] == "1"


def test_parse_pip_version():
    assert pip.parse_pip_version("pip 26.3 from /x/pip (python 3.11)") == (26, 3)
    assert pip.parse_pip_version("pip 23.2.1 from /y (python 3.11)") == (23, 2, 1)
    assert pip.parse_pip_version("No module named pip") is None


def test_progress_follows_pip_output():
    progress = pip.PipProgress()
    progress.update("Collecting torch==2.13.0+cu130")
    assert progress.phase == "Resolving torch==2.13.0+cu130"
    progress.update("  Downloading https://download.pytorch.org/whl/cu130/torch-2.13.0%2Bcu130-cp311-cp311-"
                    "manylinux_2_28_x86_64.whl (1234.5 MB)")
    assert progress.phase.startswith("Downloading torch-2.13.0") and progress.phase.endswith("(1234.5 MB)")
    progress.update("Progress 617250000 of 1234500000")
    assert progress.fraction == pytest.approx(0.5)
    progress.update("Installing collected packages: torch, diffusers")
    assert progress.phase.startswith("Installing") and progress.fraction is None
    progress.update("Successfully installed diffusers-0.42.1 torch-2.13.0+cu130")
    assert progress.fraction == 1.0


def test_error_summary_prefers_pips_error_line():
    lines = ["Looking in links: /w", "ERROR: Could not find a version that satisfies the requirement x==3",
             "ERROR: No matching distribution found for x==3", ""]
    assert pip.error_summary(lines) == "No matching distribution found for x==3"
    assert pip.error_summary(["Killed"]) == "Killed"


def test_check_python_refuses_other_versions():
    install.check_python((3, 11, 9))
    with pytest.raises(install.InstallError, match="Python 3.13.*Blender 4.2 to 5.0"):
        install.check_python((3, 13, 1))


@pytest.mark.parametrize(
    "text, hidden",
    [
        ("using token hf_abcdefghijklmnopqrstuvwxyz0123 for auth", "hf_abcdefghijklmnopqrstuvwxyz0123"),
        ("Looking in indexes: https://alice:s3cret@mirror.example/simple", "s3cret"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
    ],
)
def test_secrets_never_reach_the_ui(text, hidden):
    redacted = process.redact_secrets(text)
    assert hidden not in redacted and "***" in redacted
