"""Environment capture: requirements.txt matches importlib.metadata, the
machine tags match what the interpreter and OS say, GPU facts only come from a
framework the user imported, and environment variables only from the allow-list."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import autolog
from autolog import provenance
from tests.provenance.conftest import artifact_text


def _run() -> autolog.Run:
    with autolog.start_run() as run:
        pass
    return autolog.get_run(run.info.run_id)


def test_requirements_read_back_match_importlib_metadata():
    text = artifact_text(_run().info.run_id, "provenance/requirements.txt")
    pinned = dict(line.split("==", 1) for line in text.splitlines())
    normalized = {n.lower().replace("_", "-").replace(".", "-") for n in pinned}
    installed = {
        d.metadata["Name"].lower().replace("_", "-").replace(".", "-")
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    assert normalized == installed
    for name, version in pinned.items():
        assert importlib.metadata.version(name) == version, name
    assert pinned["autolog"] == autolog.__version__


def test_requirements_switch_off_writes_no_file():
    provenance.configure(requirements=False)
    run_id = _run().info.run_id
    paths = [a.path for a in autolog.Client().list_artifacts(run_id)]
    assert "provenance" not in paths


def test_machine_tags_say_what_the_interpreter_and_the_os_say():
    tags = _run().data.tags
    assert tags["autolog.env.python"] == (
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    assert tags["autolog.env.os"].startswith(f"{platform.system()} {platform.release()}")
    assert tags["autolog.env.cpu_count"] == str(os.cpu_count())
    assert tags["autolog.env.cpu"]
    if sys.platform.startswith("linux"):
        total_kb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        assert abs(int(tags["autolog.env.memory_mb"]) - total_kb // 1024) <= 64


def test_machine_switch_off_drops_the_machine_tags():
    provenance.configure(machine=False)
    assert not any(k.startswith("autolog.env.") for k in _run().data.tags)


_PROBE = """
import json, sys
import pytest

import autolog
{imports}
with autolog.start_run() as run:
    pass
tags = autolog.get_run(run.info.run_id).data.tags
frameworks = [m for m in ("torch", "tensorflow") if m in sys.modules]
print(json.dumps({{"tags": tags, "frameworks": frameworks}}))
"""


def _probe(tmp_path, imports: str = "") -> dict:
    env = {**os.environ, "AUTOLOG_TRACKING_URI": (tmp_path / "probe").as_uri()}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_framework_is_imported_for_gpu_facts(tmp_path):
    found = _probe(tmp_path)
    assert found["frameworks"] == []
    gpu_keys = ("gpu", "gpu_count", "cuda", "cudnn", "gpu_driver")
    assert not any(f"autolog.env.{k}" in found["tags"] for k in gpu_keys)


def test_gpu_facts_come_from_torch_when_the_user_imported_it(tmp_path):
    found = _probe(tmp_path, "import torch")
    import torch

    tags = found["tags"]
    if torch.version.cuda:
        assert tags["autolog.env.cuda"] == torch.version.cuda
        assert tags["autolog.env.cudnn"] == str(torch.backends.cudnn.version())
    else:  # a CPU build: it has no CUDA to report
        assert "autolog.env.cuda" not in tags
    if torch.cuda.is_available():
        assert tags["autolog.env.gpu_count"] == str(torch.cuda.device_count())
        assert tags["autolog.env.gpu"] == torch.cuda.get_device_name(0)
        assert tags["autolog.env.gpu_driver"]


def test_environment_variables_come_only_from_the_allow_list(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("NOT_LISTED", "visible?")
    monkeypatch.setenv("AUTOLOG_CAPTURE_ENV_VARS", "CUDA_VISIBLE_DEVICES,SLURM_JOB_ID,UNSET_VAR")
    tags = _run().data.tags
    found = {k: v for k, v in tags.items() if k.startswith("autolog.env.var.")}
    assert found == {
        "autolog.env.var.CUDA_VISIBLE_DEVICES": "0,1",
        "autolog.env.var.SLURM_JOB_ID": "4242",
    }


@pytest.mark.slow
def test_cuda_facts_come_from_tensorflow_when_the_user_imported_it(tmp_path):
    """What TensorFlow's build says (its CUDA and cuDNN, empty for a CPU build);
    no GPU model comes from it (that needs CUDA initialised)."""
    found = _probe(tmp_path, "import tensorflow")
    import tensorflow as tf

    assert found["frameworks"] == ["tensorflow"]
    info = tf.sysconfig.get_build_info()
    for ours, theirs in (("cuda", "cuda_version"), ("cudnn", "cudnn_version")):
        if info.get(theirs):
            assert found["tags"][f"autolog.env.{ours}"] == str(info[theirs])
        else:
            assert f"autolog.env.{ours}" not in found["tags"]


_SAMPLED = """
import json, sys, time
import pytest

import autolog
with autolog.start_run() as run:
    time.sleep(0.4)
keys = sorted(autolog.get_run(run.info.run_id).data.metrics)
loaded = [m for m in ("torch", "tensorflow", "pynvml") if m in sys.modules]
print(json.dumps({"keys": keys, "loaded": loaded}))
"""


def test_the_sampler_reads_gpus_through_the_driver_and_imports_no_framework(tmp_path):
    env = {
        **os.environ,
        "AUTOLOG_TRACKING_URI": (tmp_path / "probe").as_uri(),
        "AUTOLOG_SYSTEM_METRICS": "1",
        "AUTOLOG_SYSTEM_METRICS_INTERVAL": "0.05",
    }
    out = subprocess.run(
        [sys.executable, "-c", _SAMPLED],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []
    assert "system/cpu_percent" in found["keys"]
    gpu_keys = [k for k in found["keys"] if k.startswith("system/gpu_")]
    if os.path.exists("/proc/driver/nvidia/gpus"):  # NVML through ctypes, per device
        assert "system/gpu_0_utilization_percent" in gpu_keys
        assert "system/gpu_0_memory_mb" in gpu_keys
    else:  # no NVIDIA driver here: no library load is even tried
        assert gpu_keys == []


def test_name_and_version_from_the_metadata_head_as_from_the_whole_file(tmp_path, monkeypatch):
    """Only the first lines are read; a Version line cut by the chunk read, a
    header longer than the chunk or a file without its last newline still gives
    what importlib.metadata says."""
    from importlib.metadata import PathDistribution

    from autolog.provenance import environment

    monkeypatch.setattr(environment, "_HEAD_BYTES", 64)

    def dist(text: str, file_name: str = "METADATA") -> str:
        folder = tmp_path / f"d{len(list(tmp_path.iterdir()))}.dist-info"
        folder.mkdir()
        (folder / file_name).write_text(text, encoding="utf-8")
        return str(folder)

    cases = [
        "Metadata-Version: 2.1\nName: short\nVersion: 1.0",  # no newline at the end
        "Metadata-Version: 2.1\nName: cut-here\nSummary: x\nVersion: 1.22.333.4444.55555\n",
        "Metadata-Version: 2.1\nSummary: " + "s" * 100 + "\nName: late\nVersion: 2.0\n",
        "Metadata-Version: 2.1\nName: described\nVersion: 3.0\n\nName: body\nVersion: 9\n",
    ]
    for text in cases:
        found = dist(text)
        metadata = PathDistribution(Path(found)).metadata
        expected = (metadata["Name"], metadata["Version"])
        assert environment._name_and_version(found) == expected, text
    egg = dist("Metadata-Version: 1.0\nName: egg\nVersion: 0.1\n", "PKG-INFO")
    assert environment._name_and_version(egg) == ("egg", "0.1")
    assert environment._name_and_version(dist("Metadata-Version: 2.1\n")) == (None, None)
