"""Which PyTorch build the installer picks for each platform and GPU answer (pure decisions)."""

import pytest
from deps_support import import_dependencies

tb = import_dependencies("torch_build")
SystemFacts, NvidiaGpu = tb.SystemFacts, tb.NvidiaGpu

# What `nvidia-smi` prints at the top, as drivers of two generations format it.
SMI_580 = """\
Tue Nov 25 17:00:00 2025
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.95.05              Driver Version: 580.95.05      CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|   0  NVIDIA GeForce RTX 4090        Off |   00000000:01:00.0  On |                  Off |
"""
SMI_470 = """\
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 470.256.02   Driver Version: 470.256.02   CUDA Version: 11.4     |
|-------------------------------+----------------------+----------------------+
"""
QUERY = "NVIDIA GeForce RTX 4090, 24564, 8.9\nNVIDIA GeForce GTX 1080 Ti, 11264, 6.1\n"
QUERY_OLD_DRIVER = "Tesla K80, 11441, [Not Supported]\n"


def test_parse_nvidia_smi_new_and_old_headers():
    assert tb.parse_nvidia_smi(SMI_580) == ("580.95.05", (13, 0))
    assert tb.parse_nvidia_smi(SMI_470) == ("470.256.02", (11, 4))
    assert tb.parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate") == (None, None)


def test_parse_nvidia_query():
    assert tb.parse_nvidia_query(QUERY) == (
        NvidiaGpu("NVIDIA GeForce RTX 4090", 24564, (8, 9)),
        NvidiaGpu("NVIDIA GeForce GTX 1080 Ti", 11264, (6, 1)),
    )
    assert tb.parse_nvidia_query(QUERY_OLD_DRIVER) == (NvidiaGpu("Tesla K80", 11441, None),)
    assert tb.parse_nvidia_query("Field \"compute_cap\" is not a valid field to query.\n") == ()


def nvidia(system="Linux", machine="x86_64", cuda=(13, 0), capability=(8, 9), name="NVIDIA GeForce RTX 4090"):
    return SystemFacts(system, machine, (NvidiaGpu(name, 24564, capability),), "580.95.05", cuda)


CASES = [
    # facts, expected variant key, expected requirement, expected index
    (nvidia(), "CUDA_13_0", "torch==2.13.0+cu130", "https://download.pytorch.org/whl/cu130"),
    (nvidia("Windows", "AMD64", cuda=(13, 1), capability=(7, 5), name="NVIDIA GeForce GTX 1660"),
     "CUDA_13_0", "torch==2.13.0+cu130", "https://download.pytorch.org/whl/cu130"),
    (nvidia(cuda=(12, 4), name="NVIDIA GeForce RTX 3060", capability=(8, 6)),
     "CUDA_12_6", "torch==2.13.0+cu126", "https://download.pytorch.org/whl/cu126"),
    (nvidia(capability=(6, 1), name="NVIDIA GeForce GTX 1080"),
     "CUDA_12_6", "torch==2.13.0+cu126", "https://download.pytorch.org/whl/cu126"),
    (nvidia(cuda=None, capability=None), "CUDA_12_6", "torch==2.13.0+cu126", "https://download.pytorch.org/whl/cu126"),
    (nvidia(cuda=(11, 4)), "CPU", "torch==2.13.0+cpu", "https://download.pytorch.org/whl/cpu"),
    (nvidia(capability=(3, 7), name="Tesla K80"), "CPU", "torch==2.13.0+cpu", "https://download.pytorch.org/whl/cpu"),
    (nvidia("Linux", "aarch64"), "CUDA_13_0", "torch==2.13.0+cu130", "https://download.pytorch.org/whl/cu130"),
    (SystemFacts("Linux", "x86_64", amd_kfd=True, rocm_version="7.2.0"),
     "ROCM_7_2", "torch==2.13.0+rocm7.2", "https://download.pytorch.org/whl/rocm7.2"),
    (SystemFacts("Linux", "x86_64"), "CPU", "torch==2.13.0+cpu", "https://download.pytorch.org/whl/cpu"),
    (SystemFacts("Linux", "aarch64"), "CPU", "torch==2.13.0+cpu", "https://download.pytorch.org/whl/cpu"),
    (SystemFacts("Windows", "AMD64"), "DEFAULT", "torch==2.13.0", None),
    (SystemFacts("Windows", "ARM64"), "DEFAULT", "torch==2.13.0", None),
    (SystemFacts("Darwin", "arm64"), "DEFAULT", "torch==2.13.0", None),
]


@pytest.mark.parametrize("facts, key, requirement, index", CASES)
def test_automatic_choice(facts, key, requirement, index):
    build = tb.choose_torch_build(facts)
    assert (build.variant.key, build.requirement, build.extra_index_url) == (key, requirement, index)
    assert build.reason


def test_labels_say_what_the_artist_gets():
    assert tb.choose_torch_build(SystemFacts("Darwin", "arm64")).label == "MPS"
    assert tb.choose_torch_build(SystemFacts("Windows", "AMD64")).label == "CPU"
    assert tb.choose_torch_build(nvidia()).label == "CUDA 13.0"


def test_old_driver_reason_tells_to_update_it():
    assert "update the driver" in tb.choose_torch_build(nvidia(cuda=(11, 4))).reason


def test_amd_on_windows_falls_back_to_cpu_wheel():
    build = tb.choose_torch_build(SystemFacts("Windows", "AMD64", amd_kfd=True))
    assert build.label == "CPU" and build.extra_index_url is None


def test_intel_mac_is_refused_with_a_reason():
    with pytest.raises(tb.UnsupportedPlatform, match="Intel Macs"):
        tb.choose_torch_build(SystemFacts("Darwin", "x86_64"))


@pytest.mark.parametrize(
    "facts, override, requirement",
    [
        (nvidia(), "CPU", "torch==2.13.0+cpu"),
        (nvidia(), "CUDA_12_6", "torch==2.13.0+cu126"),
        (SystemFacts("Linux", "x86_64"), "CUDA_13_0", "torch==2.13.0+cu130"),
        (SystemFacts("Linux", "x86_64"), "ROCM_7_2", "torch==2.13.0+rocm7.2"),
        (SystemFacts("Windows", "AMD64"), "CUDA_13_0", "torch==2.13.0+cu130"),
        (SystemFacts("Windows", "AMD64"), "CPU", "torch==2.13.0"),
        (SystemFacts("Darwin", "arm64"), "CPU", "torch==2.13.0"),
    ],
)
def test_preference_override(facts, override, requirement):
    build = tb.choose_torch_build(facts, override)
    assert build.requirement == requirement
    assert "preferences" in build.reason


@pytest.mark.parametrize(
    "facts, override, match",
    [
        (SystemFacts("Darwin", "arm64"), "CUDA_13_0", "do not exist for macOS"),
        (SystemFacts("Windows", "AMD64"), "ROCM_7_2", "Linux x86_64 only"),
        (SystemFacts("Linux", "aarch64"), "CUDA_12_6", "no ARM wheels"),
        (SystemFacts("Windows", "ARM64"), "CUDA_13_0", "Windows on ARM"),
    ],
)
def test_impossible_override_is_refused(facts, override, match):
    with pytest.raises(tb.UnsupportedPlatform, match=match):
        tb.choose_torch_build(facts, override)


def test_unknown_override_names_the_choices():
    with pytest.raises(ValueError, match="CUDA_13_0"):
        tb.choose_torch_build(SystemFacts("Linux", "x86_64"), "CUDA_99")


def test_every_preference_item_is_a_known_variant():
    keys = [item[0] for item in tb.OVERRIDE_ITEMS]
    assert keys[0] == "AUTO" and set(keys[1:]) <= set(tb.VARIANTS)


def test_detect_on_this_machine_is_harmless():
    """No GPU here: detection must answer (not raise) and the choice is the CPU build."""
    facts = import_dependencies("system_facts").detect()
    assert facts.system and facts.machine
    if not facts.nvidia_gpus and not facts.amd_kfd and facts.system == "Linux":
        assert tb.choose_torch_build(facts).variant.key == "CPU"
