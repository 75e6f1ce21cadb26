"""scripts/record-trt-run: one-line refusals where it cannot record, and what a record holds
(over a stand-in interpreter and nvidia-smi: no machine here has TensorRT or a GPU)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "record-trt-run"


def record(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


@pytest.mark.parametrize("args, message", [
    ((), "usage: scripts/record-trt-run RUN_DIR [--precisions fp16,int8]"),
    (("RUN", "--bogus"), "unknown argument --bogus"),
    (("RUN", "--precisions"), "--precisions needs a value"),
])
def test_bad_arguments_are_one_line_errors(args, message):
    result = record(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"record-trt-run: error: {message}\n"


def test_without_tensorrt_it_says_what_to_install_and_records_nothing(tmp_path):
    before = (REPO / "docs/performance.md").read_text()
    missing = record(str(tmp_path / "nope"), PYTHON=sys.executable)
    assert missing.returncode == 2
    assert missing.stderr == (f"record-trt-run: error: {tmp_path / 'nope'}: "
                              "no such training run folder\n")
    result = record(str(tmp_path), PYTHON=sys.executable)  # this machine has no tensorrt
    assert result.returncode == 2
    assert result.stderr == (f"record-trt-run: error: tensorrt is not importable by "
                             f"{sys.executable}; pip install -e '.[tensorrt]' on the line PC\n")
    assert (REPO / "docs/performance.md").read_text() == before


FAKE_PYTHON = """#!/bin/sh
case "$*" in
    "-c import tensorrt; print(tensorrt.__version__)") echo 10.16.1.11 ;;
    "-m pytest"*) echo "4 passed in 93.1s" ;;
    *"build-engine"*"--precision int8"*) echo "convert build-engine: error: no fast INT8" >&2
        exit 2 ;;
    *"build-engine"*) echo "built" ;;
    *trt_bench.py*) printf 'batch median ms\\n    7      12.50\\n' ;;
    *) echo "unexpected: $*" >&2; exit 9 ;;
esac
"""


def test_a_record_has_versions_gpu_tests_builds_and_the_benchmark(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text(FAKE_PYTHON)
    fake_python.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = "#!/bin/sh\necho 'NVIDIA GeForce GTX 1060 6GB, 6.1, 535.183'\n"
    (bin_dir / "nvidia-smi").write_text(smi)
    (bin_dir / "nvidia-smi").chmod(0o755)
    run = tmp_path / "r152"
    run.mkdir()
    target = tmp_path / "performance.md"
    target.write_text("# Performance\n")
    result = subprocess.run([str(SCRIPT), str(run)], capture_output=True, text=True, timeout=60,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": str(fake_python),
                                 "RECORD_TO": str(target)})
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert text.startswith("# Performance\n")
    assert "NVIDIA GeForce GTX 1060 6GB, 6.1, 535.183, TensorRT 10.16.1.11" in text
    assert "`tests/test_tensorrt.py`: 4 passed in 93.1s" in text
    assert re.search(r"\\| fp16 \\| \\d+ s \\| built \\|", text)
    assert "| int8 | - | convert build-engine: error: no fast INT8 |" in text
    assert "    7      12.50" in text
