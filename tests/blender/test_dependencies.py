"""Dependency install, status and model operators through real ``bpy.ops`` calls (background mode: synchronous).

Installs use real pip with hand-written wheels from a temporary folder
(``--no-index --find-links``): no network. The add-on's user folder is the
harness's temporary BLENDER_USER_RESOURCES.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bpy
import pytest

from harness import ADDON_MODULE, REPO_ROOT
from recording_layout import RecordingLayout

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
OPERATORS = (
    "install_dependencies", "cancel_dependency_install", "refresh_dependency_status", "download_model",
    "cancel_model_download", "open_model_cache", "remove_cached_model",
)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local_wheels = _load("lt_local_wheels", REPO_ROOT / "tests" / "dependencies" / "local_wheels.py")


# -- what the add-on may do behind our back: recorded by an audit hook (real events, not mocks) --------
_AUDIT = {"on": False, "events": []}
_WATCHED = ("subprocess.Popen", "os.posix_spawn", "os.system", "socket.connect", "socket.getaddrinfo")


def _audit(event, args):
    if _AUDIT["on"] and event in _WATCHED:
        _AUDIT["events"].append(event)


sys.addaudithook(_audit)


class recorded:
    """``with recorded() as events:`` -> the process/network events raised inside the block."""

    def __enter__(self):
        _AUDIT["events"] = []
        _AUDIT["on"] = True
        return _AUDIT["events"]

    def __exit__(self, *exc):
        _AUDIT["on"] = False


# -- fixtures -------------------------------------------------------------------------------------------
def module(name):
    """A module of the enabled add-on's ``dependencies`` package (imported on first use, like the add-on does)."""
    return importlib.import_module(f"{ADDON_MODULE}.dependencies.{name}")


@pytest.fixture
def state(addon):
    """The add-on's dependency state, emptied before and after."""
    state = module("state").STATE
    state.stop_all()
    state.status = state.facts = state.torch_build = state.install = None
    state.downloads.clear()
    yield state
    state.stop_all()
    for job in [state.install, *state.downloads.values()]:
        if job is not None:
            job.join(15)
    state.status = state.facts = state.torch_build = state.install = None
    state.downloads.clear()


@pytest.fixture
def user_site(addon, monkeypatch):
    """The add-on's real site-packages folder (under the temporary user resources), removed afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = Path(bpy.utils.extension_path_user(ADDON_MODULE, path="site-packages", create=False))
    yield folder
    for path in (folder, Path(str(folder) + ".old"), folder.parent / "site-packages-staging"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def prefs(addon, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    system = bpy.context.preferences.system
    online = system.use_online_access
    prefs.model_cache_dir = str(tmp_path / "models")
    yield prefs
    prefs.model_cache_dir = ""
    prefs.torch_build = "AUTO"
    system.use_online_access = online


@pytest.fixture(scope="module")
def probed(addon):
    """One real Refresh for the module (it imports torch in a child: ~2 s): what it left in the state."""
    state = module("state").STATE
    assert bpy.ops.latent_textures.refresh_dependency_status() == {"FINISHED"}
    return state.status, state.status_error, state.facts


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    local_wheels.write_wheel(folder, "ltfake", "1.0")
    local_wheels.write_corrupt_wheel(folder, "ltfake", "2.0")
    return folder


def version_in(folder: Path, name: str) -> str | None:
    completed = subprocess.run(
        [sys.executable, "-I", "-c",
         f"import sys; sys.path.insert(0, {str(folder)!r}); import {name}; print({name}.VERSION)"],
        capture_output=True, text=True,
    )
    return completed.stdout.strip() if completed.returncode == 0 else None


# -- registration ---------------------------------------------------------------------------------------
def test_operators_and_preference_registered(addon, prefs):
    for name in OPERATORS:
        assert getattr(bpy.ops.latent_textures, name).idname() == f"LATENT_TEXTURES_OT_{name}"
    prop = prefs.bl_rna.properties["torch_build"]
    assert prefs.torch_build == "AUTO"
    assert [item.identifier for item in prop.enum_items] == ["AUTO", "CUDA_13_0", "CUDA_12_6", "ROCM_7_2", "CPU"]


ENABLE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tools!r})
    import extension_loader as loader
    loader.isolate_user_resources()
    import bpy
    events = []
    def hook(event, args):
        if event in ("subprocess.Popen", "os.posix_spawn", "socket.connect", "socket.getaddrinfo"):
            events.append(event)
    sys.addaudithook(hook)
    loader.ensure_repo(loader.make_extension_repo(), "lt_probe")
    loader.enable(loader.addon_module("lt_probe"))
    state = sys.modules[loader.addon_module("lt_probe") + ".dependencies.state"].STATE
    print("EVENTS", events)
    print("STATE", state.status, state.facts)
    print("HUB", "huggingface_hub" in sys.modules)
    """
)


def test_enabling_probes_nothing_and_starts_no_process():
    """The status is computed on demand only: enabling runs no nvidia-smi, no pip, no probe, no network."""
    completed = subprocess.run(
        [sys.executable, "-c", ENABLE_SCRIPT.format(tools=str(REPO_ROOT / "tools"))],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    assert "EVENTS []" in lines
    assert "STATE None None" in lines
    assert "HUB False" in lines


# -- install ----------------------------------------------------------------------------------------------
def test_install_local_wheel_then_failure_keeps_it(state, user_site, wheels):
    result = bpy.ops.latent_textures.install_dependencies(requirements="ltfake==1.0", find_links=str(wheels),
                                                          no_index=True)
    assert result == {"FINISHED"}
    assert state.install.result.ok
    assert version_in(user_site, "ltfake") == "1.0"
    assert not (user_site.parent / "site-packages-staging").exists()

    with pytest.raises(RuntimeError) as failure:
        bpy.ops.latent_textures.install_dependencies(requirements="ltfake==2.0", find_links=str(wheels),
                                                     no_index=True)
    message = str(failure.value)
    assert "pip failed" in message and "previous packages are unchanged" in message
    assert len(message.splitlines()) > 2, "pip's last lines come with the error"
    assert version_in(user_site, "ltfake") == "1.0"
    assert not state.install.result.ok and state.install.result.tail


def test_activate_puts_the_installed_folder_first(state, user_site, wheels):
    """The one sys.path change, as bridge/job.py makes it before importing the engine."""
    assert module("blender").activate_engine_packages() is False  # nothing installed: no change
    assert str(user_site) not in sys.path
    bpy.ops.latent_textures.install_dependencies(requirements="ltfake==1.0", find_links=str(wheels), no_index=True)
    assert module("blender").activate_engine_packages() is True
    assert sys.path[0] == str(user_site)
    import ltfake

    assert ltfake.VERSION == "1.0" and ltfake.__file__.startswith(str(user_site))
    del sys.modules["ltfake"]


def test_install_needing_the_network_is_refused_offline(state, user_site, prefs, wheels):
    bpy.context.preferences.system.use_online_access = False
    assert not bpy.app.online_access
    with recorded() as events, pytest.raises(RuntimeError, match="Online access is off.*Allow Online Access"):
        bpy.ops.latent_textures.install_dependencies(requirements="ltfake==1.0", find_links=str(wheels))
    assert events == [] and state.install is None and not user_site.exists()


def test_engine_install_plan_on_this_machine(state, prefs, probed):
    """Without overrides the operator plans the pinned packages with the CPU torch build (no GPU here).

    Checked without running pip: the plan refuses offline, before any process starts.
    """
    bpy.context.preferences.system.use_online_access = False
    with recorded() as events, pytest.raises(RuntimeError, match="PyTorch, diffusers"):
        bpy.ops.latent_textures.install_dependencies()
    assert events == []
    state.facts = probed[2]
    module("state").update_torch_build(state, prefs.torch_build)
    if state.facts.system == "Linux" and not state.facts.nvidia_gpus and not state.facts.amd_kfd:
        assert state.torch_build.requirement == "torch==2.13.0+cpu"
    prefs.torch_build = "CUDA_12_6"  # the preference's update re-decides at once, without probing again
    assert state.torch_build.requirement == "torch==2.13.0+cu126"
    assert "preferences" in state.torch_build.reason


def test_cancel_operator_stops_a_running_install(state, user_site, wheels):
    bpy.ops.latent_textures.install_dependencies(requirements="ltfake==1.0", find_links=str(wheels), no_index=True)
    assert not bpy.ops.latent_textures.cancel_dependency_install.poll()
    install = module("install")
    blender = module("blender")
    with local_wheels.stalling_find_links("ltslow-1.0-py3-none-any.whl") as url:
        plan = install.InstallPlan(
            python=sys.executable, target=blender.site_packages_dir(), staging=blender.staging_dir(),
            temp_dir=blender.pip_temp_dir(), requirements=("ltslow==1.0",),
            source=module("pip").PackageSource(find_links=(url,), no_index=True),
        )
        state.install = install.InstallJob(plan)
        state.install.start()
        deadline = time.monotonic() + 30
        while not state.install.progress.phase.startswith("Downloading") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.installing
        assert not bpy.ops.latent_textures.install_dependencies.poll(), "one install at a time"
        log = draw_preferences()
        assert ("operator", "latent_textures.cancel_dependency_install") in log
        assert any(entry[0] == "progress" and entry[2].startswith("Downloading ltslow") for entry in log)
        assert bpy.ops.latent_textures.cancel_dependency_install() == {"FINISHED"}
        state.install.join(15)
    assert state.install.result.cancelled
    assert version_in(user_site, "ltfake") == "1.0"


# -- status ------------------------------------------------------------------------------------------------
def test_refresh_status_on_this_machine(probed):
    status, error, facts = probed
    assert status is not None, error
    assert status.package("torch").version.startswith("2.13.0")
    assert status.torch_imported and status.build == "CPU"
    assert any(device.type == "cpu" and device.memory for device in status.devices)
    for name in ("diffusers", "transformers", "accelerate", "safetensors", "peft"):
        assert status.package(name).installed, name
    # The probe looked in the add-on's folder first, then in Blender's own path.
    assert status.search_path[0] == module("blender").site_packages_dir()
    assert facts is not None


def test_refresh_reports_the_summary(state, capfd, monkeypatch):
    """The operator's report, on a path without packages (no torch import: fast)."""
    blender = module("blender")
    monkeypatch.setattr(blender, "engine_search_path",
                        lambda: [blender.site_packages_dir(), *[p for p in sys.path if "site-packages" not in p]])
    assert bpy.ops.latent_textures.refresh_dependency_status() == {"FINISHED"}
    assert "Missing: torch, diffusers" in capfd.readouterr().out
    assert state.status.missing and state.torch_build is not None


# -- models ------------------------------------------------------------------------------------------------
def test_download_is_refused_offline_without_touching_the_network(state, prefs):
    bpy.context.preferences.system.use_online_access = False
    with recorded() as events, pytest.raises(RuntimeError) as failure:
        bpy.ops.latent_textures.download_model(repo_id=SD15)
    assert events == [], "no process, no socket while online access is off"
    message = str(failure.value)
    assert "Online access is off" in message and SD15 in message and "Allow Online Access" in message
    assert SD15 not in state.downloads
    assert not os.path.exists(prefs.resolved_model_cache_dir())


def test_download_not_cached_with_hf_offline_says_so(state, prefs, monkeypatch):
    """Online access on, but HF_HUB_OFFLINE=1 in the environment: the real huggingface_hub refuses (no network)."""
    bpy.context.preferences.system.use_online_access = True
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="is not downloaded and Hugging Face's offline mode is on"):
        bpy.ops.latent_textures.download_model(repo_id=SD15)
    assert not state.downloads[SD15].result.ok


def test_download_of_a_cached_model_needs_no_network(state, prefs, capfd):
    bpy.context.preferences.system.use_online_access = False
    fake_cached_model(Path(prefs.resolved_model_cache_dir()), SD15)
    with recorded() as events:
        assert bpy.ops.latent_textures.download_model(repo_id=SD15) == {"FINISHED"}
    assert events == []
    assert "already downloaded" in capfd.readouterr().out


def test_download_rejects_what_is_not_a_repo_id(state, prefs):
    bpy.context.preferences.system.use_online_access = True
    with recorded() as events, pytest.raises(RuntimeError, match="not a Hugging Face repo id"):
        bpy.ops.latent_textures.download_model(repo_id="../../etc")
    assert events == []


def test_remove_cached_model(state, prefs):
    cache = Path(prefs.resolved_model_cache_dir())
    fake_cached_model(cache, SD15)
    assert bpy.ops.latent_textures.remove_cached_model(repo_id=SD15) == {"FINISHED"}
    assert not (cache / ("models--" + SD15.replace("/", "--"))).exists()
    with pytest.raises(RuntimeError, match="not in the cache"):
        bpy.ops.latent_textures.remove_cached_model(repo_id=SD15)


def test_open_model_cache_creates_it(state, prefs, capfd):
    folder = prefs.resolved_model_cache_dir()
    assert bpy.ops.latent_textures.open_model_cache() == {"FINISHED"}
    assert os.path.isdir(folder) and folder in capfd.readouterr().out


def test_cancel_download_needs_a_running_download(state):
    assert not bpy.ops.latent_textures.cancel_model_download.poll()
    with pytest.raises(RuntimeError, match="poll"):
        bpy.ops.latent_textures.cancel_model_download()


def test_a_running_download_shows_progress_and_cancels(state, prefs, tmp_path):
    """The download child hangs (a huggingface_hub that never finishes importing: no network at all)."""
    fake = tmp_path / "fake_hub"
    (fake / "huggingface_hub").mkdir(parents=True)
    (fake / "huggingface_hub" / "__init__.py").write_text("import time\ntime.sleep(60)\n")
    path = [str(fake), *[p for p in sys.path if "site-packages" not in p]]
    job = module("download").DownloadJob(sys.executable, path, SD15, prefs.resolved_model_cache_dir())
    state.downloads[SD15] = job
    job.start()
    deadline = time.monotonic() + 10
    while job._process.alive() and job._process._process is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.downloading(SD15)
    log = draw_preferences()
    assert ("set", "repo_id", SD15) in log and ("operator", "latent_textures.cancel_model_download") in log
    assert any(entry[0] == "progress" for entry in log)
    started = time.monotonic()
    assert bpy.ops.latent_textures.cancel_model_download(repo_id=SD15) == {"FINISHED"}
    job.join(10)
    assert time.monotonic() - started < 5
    assert job.result.cancelled and "cancelled" in job.result.message
    assert any("cancelled" in text for text in labels(draw_preferences()))


# -- the preferences draw (recorded against real RNA: a UILayout needs a window) ------------------------
class PreferencesForDraw:
    """The real preferences, with a recording ``layout`` (the RNA struct's own is read-only)."""

    def __init__(self, prefs, layout):
        self.__dict__.update(prefs=prefs, layout=layout)

    def __getattr__(self, name):
        return getattr(self.prefs, name)


def draw_preferences():
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    log = []
    type(prefs).draw(PreferencesForDraw(prefs, RecordingLayout(log)), bpy.context)
    return log


def labels(log):
    return [entry[1] for entry in log if entry[0] == "label"]


def test_preferences_before_any_check(state, prefs):
    log = draw_preferences()
    assert "Not checked yet: click Refresh (takes a few seconds)" in labels(log)
    assert ("operator", "latent_textures.refresh_dependency_status") in log
    assert ("operator", "latent_textures.install_dependencies") in log
    assert {"torch_build", "model_cache_dir", "device", "precision"} <= {e[1] for e in log if e[0] == "prop"}
    # Every curated model with its licence and a Download button.
    catalog = module("catalog").CATALOG
    downloads = [entry[2] for entry in log if entry[0] == "set" and entry[1] == "repo_id"]
    assert downloads == [model.repo_id for model in catalog]
    assert all(any(model.licence in text for text in labels(log)) for model in catalog)
    assert any("Online access is off" in text for text in labels(log))


def test_preferences_after_refresh_show_versions_build_devices_and_cache(state, prefs, probed):
    cache = prefs.resolved_model_cache_dir()
    fake_cached_model(Path(cache), SD15)
    fake_cached_model(Path(cache), "someone/custom-model")
    state.status, state.facts = probed[0], probed[2]
    module("state").update_torch_build(state, prefs.torch_build)
    module("state").measure_cache(state, cache, [SD15, "someone/custom-model"])
    texts = labels(draw_preferences())
    assert "torch" in texts and any(text.startswith("2.13.0") for text in texts)
    assert "PyTorch build: CPU" in texts
    assert any(text.startswith("CPU: ") and text.endswith(" GB") for text in texts)
    assert module("blender").site_packages_dir() in " ".join(texts)
    assert any(text.startswith("Cache size: ") and "not measured" not in text for text in texts)
    assert any(SD15 in text and "downloaded" in text for text in texts)
    assert any(text.startswith("Install uses PyTorch") for text in texts)
    assert any(text.startswith("someone/custom-model · ") for text in texts), "models outside the list too"


def test_preferences_show_a_failed_install_with_pips_lines(state, user_site, wheels, prefs):
    with pytest.raises(RuntimeError):
        bpy.ops.latent_textures.install_dependencies(requirements="ltfake==3.0", find_links=str(wheels),
                                                     no_index=True)
    texts = labels(draw_preferences())
    assert any("No matching distribution found for ltfake==3.0" in text for text in texts)


# -- helpers -------------------------------------------------------------------------------------------------
def fake_cached_model(cache: Path, repo_id: str) -> None:
    """A complete model in the hub cache layout (what a finished download leaves)."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    snapshot = folder / "snapshots" / commit
    index = {"scheduler": ["diffusers", "PNDMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"]}
    files = {"model_index.json": json.dumps(index), "scheduler/scheduler_config.json": "{}",
             "unet/config.json": "{}", "unet/diffusion_pytorch_model.safetensors": "w" * 4096}
    for name, text in files.items():
        path = snapshot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
