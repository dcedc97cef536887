"""Real pip, real folders, no network: local wheels into a temporary target through the install machinery."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
from deps_support import import_dependencies
from local_wheels import stalling_find_links, write_corrupt_wheel, write_wheel

deps = import_dependencies()
install = import_dependencies("install")
pip = import_dependencies("pip")


def plan_for(tmp_path: Path, requirements, find_links, python=sys.executable, no_index=True):
    user = tmp_path / "user"
    return install.InstallPlan(
        python=python,
        target=str(user / "site-packages"),
        staging=str(user / "site-packages-staging"),
        temp_dir=str(user / "pip-tmp"),
        requirements=tuple(requirements),
        source=pip.PackageSource(find_links=(str(find_links),), no_index=no_index),
    )


def installed_version(target: str, name: str) -> str | None:
    """Import the package from ``target`` in a fresh Python: what the engine would get."""
    completed = subprocess.run(
        [sys.executable, "-I", "-c",
         f"import sys; sys.path.insert(0, {target!r}); import {name}; print({name}.VERSION)"],
        capture_output=True, text=True,
    )
    return completed.stdout.strip() if completed.returncode == 0 else None


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    write_wheel(folder, "ltfake", "1.0")
    write_corrupt_wheel(folder, "ltfake", "2.0")
    return folder


def test_install_then_failures_keep_the_previous_install(tmp_path, wheels):
    plan = plan_for(tmp_path, ["ltfake==1.0"], wheels)
    lines = []
    result = install.InstallJob(plan, on_line=lines.append).run()
    assert result.ok, result
    assert installed_version(plan.target, "ltfake") == "1.0"
    assert not os.path.exists(plan.staging) and not os.path.exists(plan.temp_dir)
    assert lines[0].startswith("$ ") and "--target" in lines[0]
    assert any("Successfully installed ltfake-1.0" in line for line in lines)

    # A wheel pip finds but cannot install.
    broken = install.InstallJob(plan_for(tmp_path, ["ltfake==2.0"], wheels)).run()
    assert not broken.ok and not broken.cancelled
    assert "pip failed" in broken.message and "previous packages are unchanged" in broken.message
    assert broken.tail, "the last lines of pip's output are kept for the preferences"
    assert installed_version(plan.target, "ltfake") == "1.0"
    assert not os.path.exists(plan.staging)

    # A version that does not exist.
    missing = install.InstallJob(plan_for(tmp_path, ["ltfake==3.0"], wheels)).run()
    assert not missing.ok
    assert "No matching distribution found for ltfake==3.0" in missing.message
    assert installed_version(plan.target, "ltfake") == "1.0"


def test_upgrade_replaces_the_folder_whole(tmp_path, wheels):
    write_wheel(wheels, "ltfake", "1.5")
    write_wheel(wheels, "ltother", "1.0")
    first = plan_for(tmp_path, ["ltfake==1.0", "ltother==1.0"], wheels)
    assert install.InstallJob(first).run().ok
    assert install.InstallJob(plan_for(tmp_path, ["ltfake==1.5"], wheels)).run().ok
    assert installed_version(first.target, "ltfake") == "1.5"
    # Nothing of the previous install lingers (a swap, not an overlay).
    assert installed_version(first.target, "ltother") is None
    assert not os.path.exists(first.target + ".old")


def test_cancel_during_a_download_stops_pip_and_keeps_the_old_install(tmp_path, wheels):
    assert install.InstallJob(plan_for(tmp_path, ["ltfake==1.0"], wheels)).run().ok
    with stalling_find_links("ltslow-1.0-py3-none-any.whl") as url:
        job = install.InstallJob(plan_for(tmp_path, ["ltslow==1.0"], url))
        job.start()
        deadline = time.monotonic() + 30
        while not job.progress.phase.startswith("Downloading") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.progress.phase.startswith("Downloading ltslow-1.0"), list(job.lines)
        pid = job._process._process.pid
        started = time.monotonic()
        job.cancel()
        job.join(15)
        assert not job.running
        assert time.monotonic() - started < 10
    assert job.result.cancelled and "unchanged" in job.result.message
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # pip's whole process group is gone
    assert installed_version(job.plan.target, "ltfake") == "1.0"
    assert not os.path.exists(job.plan.staging)


def test_cancel_before_start_runs_nothing(tmp_path, wheels):
    job = install.InstallJob(plan_for(tmp_path, ["ltfake==1.0"], wheels))
    job.cancel()
    result = job.run()
    assert result.cancelled and not os.path.exists(job.plan.target)


def test_pip_is_bootstrapped_with_ensurepip_when_missing(tmp_path, wheels):
    """A Python without pip (as some Linux distributions package Blender's): ensurepip first, then install."""
    env_dir = tmp_path / "nopip"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = str(env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0
    lines = []
    job = install.InstallJob(plan_for(tmp_path, ["ltfake==1.0"], wheels, python=python), on_line=lines.append)
    result = job.run()
    assert result.ok, (result, lines)
    assert any("ensurepip" in line for line in lines)
    assert job.pip_version is not None
    assert installed_version(job.plan.target, "ltfake") == "1.0"


def test_swap_rolls_back_when_the_second_rename_fails(tmp_path):
    target = tmp_path / "site-packages"
    (target / "pkg").mkdir(parents=True)
    with pytest.raises(OSError):
        install.swap_into_place(str(tmp_path / "no-such-staging"), str(target))
    assert (target / "pkg").is_dir() and not (tmp_path / "site-packages.old").exists()


def test_interrupted_swap_is_recovered(tmp_path):
    target = tmp_path / "site-packages"
    (tmp_path / "site-packages.old" / "pkg").mkdir(parents=True)
    assert install.recover_interrupted_swap(str(target))
    assert (target / "pkg").is_dir()
    assert not install.recover_interrupted_swap(str(target))


def test_not_enough_disk_space_is_said_before_pip_runs(tmp_path):
    problem = install.free_space_problem(str(tmp_path / "not" / "yet"), 10**18)
    assert problem and "free" in problem
    assert install.free_space_problem(str(tmp_path), 1) is None


def test_activate_puts_the_folder_first_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "site-packages"
    assert deps.activate(folder) is False and str(folder) not in sys.path
    folder.mkdir()
    assert deps.activate(folder) is True
    assert sys.path[0] == str(folder)
    assert deps.activate(folder) is True and sys.path.count(str(folder)) == 1
    assert deps.is_active(folder)


def test_activate_completes_an_interrupted_swap(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "site-packages.old").mkdir()
    assert deps.activate(tmp_path / "site-packages") is True
    assert (tmp_path / "site-packages").is_dir()

