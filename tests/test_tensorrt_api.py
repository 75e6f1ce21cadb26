"""The TensorRT layer against the real binding wheels of every supported version (no GPU needed).

The `tensorrt` extension of each pinned wheel is imported in a subprocess over stand-in
libnvinfer/libnvonnxparser shared objects built here with the C compiler: their entry points
return NULL, which is enough for pybind11 to register every class, method, property and enum.
Every TensorRT attribute that convert/tensorrt/ and edge/inference/runtime/tensorrt.py use is found
by an `ast` scan (a new use cannot escape) and must exist in every supported version; only uses
guarded by hasattr/getattr may be missing somewhere; and the first unsupported major must really
lack what the `<11` cap protects against. Wheels are cached in /.test-cache/ (ignored by git).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
import zipfile
from pathlib import Path

import pytest

from edge.inference.manifest import OLDEST_TENSORRT, SUPPORTED_TENSORRT_MAJORS

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".test-cache" / "tensorrt-bindings"
SCANNED = [*sorted((REPO / "convert" / "tensorrt").glob("*.py")),
           REPO / "edge/inference/runtime/tensorrt.py"]
ROOTS = {"trt", "tensorrt"}  # module names; `self.trt` / `self._trt` hold the same module
SELF_ROOTS = {"trt", "_trt"}

# (requirement, wheel, sha256): 8.6.1 (the GTX 1060's last), oldest and newest 10.x, newest 11.x.
WHEELS = [
    ("tensorrt-bindings==8.6.1", "tensorrt_bindings-8.6.1-cp311-none-manylinux_2_17_x86_64.whl",
     "705cfab5c60f0bed7d939559d880165a761bd9ac0f4203004948a760eef99838"),
    ("tensorrt-cu12-bindings==10.0.1",
     "tensorrt_cu12_bindings-10.0.1-cp311-none-manylinux_2_17_x86_64.whl",
     "f7cfe4edc7d1db20aa2a765cb0acb0dae8a6c4583b99aeade397f9e8f87f4a74"),
    ("tensorrt-cu12-bindings==10.16.1.11",
     "tensorrt_cu12_bindings-10.16.1.11-cp311-none-manylinux_2_28_x86_64.whl",
     "150ef2b672487e29a8ea916353467c3e199994fb33589167e3641a928e243aa7"),
    ("tensorrt-cu12-bindings==11.4.0.106",
     "tensorrt_cu12_bindings-11.4.0.106-cp311-none-manylinux_2_28_x86_64.whl",
     "e2ab48f316bbff6a7a44a30e94a9ceb0d2cf6645ff39feadecfa68d7cb7a94bf"),
]
UNSUPPORTED = max(SUPPORTED_TENSORRT_MAJORS) + 1
# What TensorRT 11 removed and the builder uses: the reason for the cap.
CAPPED = ["trt.BuilderFlag.FP16", "trt.BuilderFlag.INT8", "trt.IInt8EntropyCalibrator2",
          "trt.IBuilderConfig.int8_calibrator", "trt.IBuilderConfig.set_calibration_profile",
          "trt.ILayer.precision", "trt.ILayer.set_output_type"]

STAND_IN = r"""
void *createInferBuilder_INTERNAL(void) { return 0; }
void *createInferRuntime_INTERNAL(void) { return 0; }
void *createInferRefitter_INTERNAL(void) { return 0; }
void *getPluginRegistry(void) { return 0; }
void *getBuilderPluginRegistry(void) { return 0; }
void *createNvOnnxParser_INTERNAL(void) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
int initLibNvInferPlugins(void) { return 0; }
/* 8.6 also links the UFF and Caffe parsers (C++ names, spelled mangled here). */
void *_ZN11nvuffparser15createUffParserEv(void) { return 0; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void) {}
void *_ZN14nvcaffeparser117createCaffeParserEv(void) { return 0; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) {}
"""
# Names the layer uses on non-TensorRT objects that some TensorRT class also happens to have.
NOT_TENSORRT = {"update": "calibrator.py: train.progress.Progress",
                "free": "pycuda device allocations",
                "release": "runtime: threading.Lock"}
SONAMES = ["libnvinfer", "libnvonnxparser", "libnvparsers", "libnvinfer_plugin"]

# Runs in the subprocess: argv = wheel dir, JSON list of chains. Prints what exists.
PROBE = r"""
import inspect, json, re, sys
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as trt
sys.modules["tensorrt"] = trt
chains, used = json.loads(sys.argv[2]), set(json.loads(sys.argv[3]))
def resolve(chain):
    obj = trt
    for part in chain.split(".")[1:]:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True
members, deprecated = set(), {}
DEPRECATED = re.compile(r"(?<!\()\[DEPRECATED\] Deprecated in TensorRT ([0-9.]+[0-9])")
def own_doc(owner, name):
    # the part of the docstrings that is about owner.name alone
    value = getattr(owner, name)
    doc = getattr(value, "__doc__", None) or ""
    if inspect.ismodule(owner):  # a class: its opening, not its members' paragraphs
        return doc.split("Members:")[0][:300]
    if isinstance(value, owner):  # an enum member: its paragraph of the enum's docstring
        own = re.search(rf"\n  {name} :(.*?)(?=\n\n  \w+ :|\Z)", doc, re.DOTALL)
        return own[1] if own else ""
    ivar = re.search(rf":ivar {name}:[^\n]*", owner.__doc__ or "")  # a property
    return doc + (ivar[0] if ivar else "")
def look_at(owner):
    members.update(dir(owner))
    for name in used & set(dir(owner)):
        since = DEPRECATED.search(own_doc(owner, name))
        if since:
            deprecated[name] = min(deprecated.get(name, since[1]), since[1])
look_at(trt)
for _, cls in inspect.getmembers(trt, inspect.isclass):
    look_at(cls)
    for _, inner in inspect.getmembers(cls, inspect.isclass):
        look_at(inner)
print(json.dumps({"version": trt.__version__, "chains": {c: resolve(c) for c in chains},
                  "members": sorted(members), "deprecated": deprecated}))
"""


def _chain(node: ast.AST) -> str | None:
    """"trt.A.B" for an attribute chain rooted at the tensorrt module, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
        if (isinstance(node, ast.Attribute) and node.attr in SELF_ROOTS
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            return ".".join(["trt", *reversed(parts)])
    if isinstance(node, ast.Name) and node.id in ROOTS and parts:
        return ".".join(["trt", *reversed(parts)])
    return None


def scan() -> tuple[set[str], set[str], set[str]]:
    """(module chains, other attribute names, names guarded by hasattr/getattr) in SCANNED."""
    chains, names, guarded = set(), set(), set()
    for path in SCANNED:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain = _chain(node)
                if chain:
                    chains.add(chain)
                elif _chain(node.value) is None:
                    names.add(node.attr)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant)):
                guarded.add(node.args[1].value)
    return chains, names, guarded


def _download(requirement: str, wheel: str, sha256: str) -> Path:
    path = CACHE / wheel
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64")
                     for a in ("--platform", p)]
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", *platforms, "-d", str(CACHE), requirement],
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode or not path.exists():
            pytest.skip(f"cannot download {requirement} (network?): "
                        f"{result.stderr.strip().splitlines()[-1:] or result.returncode}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == sha256, f"{path}: sha256 {digest}, pinned {sha256}"
    return path


def _unpacked(wheel: Path) -> Path:
    target = CACHE / wheel.name.removesuffix(".whl")
    if not (target / "tensorrt_bindings" / "tensorrt.so").exists():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return target


@pytest.fixture(scope="module")
def stand_in_libs(tmp_path_factory) -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        pytest.skip("no C compiler (cc) to build the stand-in libnvinfer")
    libs = tmp_path_factory.mktemp("stand-in")
    (libs / "standin.c").write_text(STAND_IN)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(libs / "libstandin.so"),
                    str(libs / "standin.c")], check=True, capture_output=True, timeout=120)
    for soname in SONAMES:
        for major in (*SUPPORTED_TENSORRT_MAJORS, UNSUPPORTED):
            (libs / f"{soname}.so.{major}").symlink_to("libstandin.so")
    return libs


def run_with_bindings(libs: Path, wheel_dir: Path, code: str, *args: str):
    env = {**os.environ, "LD_LIBRARY_PATH": str(libs), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", code,
                           str(wheel_dir), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def probes(stand_in_libs) -> dict[str, dict]:
    """{version: probe result} for every pinned wheel."""
    chains, names, guarded = scan()
    asked = sorted(chains | set(CAPPED))
    used = sorted(names | guarded | {c.rsplit(".", 1)[1] for c in chains})
    found = {}
    for requirement, wheel, sha256 in WHEELS:
        wheel_dir = _unpacked(_download(requirement, wheel, sha256))
        result = run_with_bindings(stand_in_libs, wheel_dir, PROBE, json.dumps(asked),
                                   json.dumps(used))
        assert result.returncode == 0, f"{requirement}: {result.stderr.strip()[-2000:]}"
        probe = json.loads(result.stdout)
        assert probe["version"] == requirement.split("==")[1]
        found[probe["version"]] = probe
    return found


def _major(version: str) -> int:
    return int(version.split(".")[0])


def test_the_scan_finds_the_layers_tensorrt_uses():
    chains, names, guarded = scan()
    # Known uses from each scanned file: the scan must see through self.trt / self._trt too.
    assert {"trt.Builder", "trt.BuilderFlag.INT8", "trt.IInt8EntropyCalibrator2",
            "trt.Runtime", "trt.TensorIOMode.INPUT", "trt.nptype"} <= chains
    assert {"set_input_shape", "set_tensor_address", "execute_async_v3",
            "build_serialized_network", "set_calibration_profile"} <= names
    assert {"EXPLICIT_BATCH", "OBEY_PRECISION_CONSTRAINTS", "platform_has_fast_fp16"} <= guarded


def test_the_cap_matches_the_supported_versions():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirement = next(r for r in extras["tensorrt"] if r.startswith("tensorrt"))
    assert requirement == f"tensorrt>={OLDEST_TENSORRT},<{UNSUPPORTED}"
    installer = (REPO / "systemd/install.sh").read_text()
    pins = re.findall(r'echo "(tensorrt[^"]*)"', installer)
    newest = max(SUPPORTED_TENSORRT_MAJORS)
    assert pins == [f"tensorrt=={OLDEST_TENSORRT}", f"tensorrt>={newest},<{UNSUPPORTED}"]
    tested = sorted({_major(r.split("==")[1]) for r, _, _ in WHEELS})
    assert tested == sorted({*SUPPORTED_TENSORRT_MAJORS, UNSUPPORTED})
    assert WHEELS[0][0].endswith(f"=={OLDEST_TENSORRT}")


def test_every_used_module_attribute_exists_in_every_supported_version(probes):
    chains, _, guarded = scan()
    for version, probe in probes.items():
        if _major(version) not in SUPPORTED_TENSORRT_MAJORS:
            continue
        missing = {c for c in chains if not probe["chains"][c]}
        unguarded = {c for c in missing if c.rsplit(".", 1)[1] not in guarded
                     and not any(m != c and c.startswith(m + ".") for m in missing)}
        assert not unguarded, f"TensorRT {version} lacks {sorted(unguarded)} (not hasattr-guarded)"


def test_every_used_method_and_property_exists_in_every_supported_version(probes):
    """Names used on TensorRT objects (config.set_flag, engine.get_tensor_mode, ...): a name that
    some version's classes have is a TensorRT name, and every supported version must have it."""
    _, names, guarded = scan()
    supported = {v: set(p["members"]) for v, p in probes.items()
                 if _major(v) in SUPPORTED_TENSORRT_MAJORS}
    assert len(supported) == len(WHEELS) - 1
    tensorrt_names = {n for n in names if any(n in m for m in supported.values())}
    tensorrt_names -= set(NOT_TENSORRT)
    assert len(tensorrt_names) > 25, sorted(tensorrt_names)  # the scan really found the uses
    missing = {v: sorted(tensorrt_names - members - guarded) for v, members in supported.items()}
    assert not any(missing.values()), f"lacking (not hasattr-guarded): {missing}"


def test_guarded_uses_are_the_only_ones_missing_anywhere(probes):
    chains, names, guarded = scan()
    supported = {v: p for v, p in probes.items() if _major(v) in SUPPORTED_TENSORRT_MAJORS}
    every_member = set().union(*(p["members"] for p in supported.values()))
    missing_somewhere = {}
    for version, probe in supported.items():
        gone = {c.rsplit(".", 1)[1] for c in chains if not probe["chains"][c]}
        gone |= {n for n in (names | guarded) & every_member if n not in probe["members"]}
        for name in gone - set(NOT_TENSORRT):
            missing_somewhere.setdefault(name, []).append(version)
    assert set(missing_somewhere) <= guarded, missing_somewhere
    # The guards are live: 8.6.1's parser errors have no node_name/node_operator (10.x added them).
    assert missing_somewhere["node_name"] == ["8.6.1"], missing_somewhere


def test_the_unsupported_major_lacks_what_the_cap_protects_against(probes):
    chains, names, _ = scan()
    for version, probe in probes.items():
        present = {c for c in CAPPED if probe["chains"][c]}
        if _major(version) in SUPPORTED_TENSORRT_MAJORS:
            assert present == set(CAPPED), f"TensorRT {version} lacks {set(CAPPED) - present}"
        else:
            assert not present, f"TensorRT {version} still has {sorted(present)}: cap still needed?"
    # and the layer really uses them (or the cap would protect nothing)
    used = {c.rsplit(".", 1)[1] for c in chains} | names
    assert {c.rsplit(".", 1)[1] for c in CAPPED} <= used


NULL_OBJECTS = r"""
import sys
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as trt
sys.modules["tensorrt"] = trt
from convert.errors import EngineBuildError
from edge.errors import ModelError
from edge.inference.runtime.tensorrt import recording_logger, tensorrt_object
try:
    trt.Builder(trt.Logger())
except TypeError as exc:
    print("raw:", exc)
logger = recording_logger(trt)  # the runtime's ILogger subclass, on the real binding
logger.log(trt.ILogger.Severity.ERROR, "engine plan version mismatch")
logger.log(trt.ILogger.Severity.INFO, "not kept")
for factory, what, error in ((trt.Builder, "builder", EngineBuildError),
                             (trt.Runtime, "runtime", ModelError)):
    try:
        tensorrt_object(factory, what, logger, error=error)
    except error as exc:
        print(type(exc).__name__ + ":", exc)
print("errors:", logger.errors)
"""


def test_a_null_builder_or_runtime_is_a_one_line_error(probes, stand_in_libs):
    """The stand-in libnvinfer returns NULL, as TensorRT does when its own CUDA init fails."""
    for requirement, wheel, _ in WHEELS:
        result = run_with_bindings(stand_in_libs, CACHE / wheel.removesuffix(".whl"), NULL_OBJECTS)
        assert result.returncode == 0, f"{requirement}: {result.stderr[-2000:]}"
        lines = result.stdout.strip().splitlines()
        assert lines[0].startswith("raw:") and "nullptr" in lines[0]  # what pybind11 raises
        assert lines[1].startswith("EngineBuildError: TensorRT could not create its builder (")
        assert lines[2].startswith("ModelError: TensorRT could not create its runtime (")
        assert lines[3] == "errors: ['engine plan version mismatch']"
        assert len(lines) == 4


CALIBRATOR_IMPORT = r"""
import sys, warnings
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as trt
sys.modules["tensorrt"] = trt
import convert.tensorrt.calibrator as calibrator
print([c.__name__ for c in calibrator.TileCalibrator.__mro__])
"""


def test_the_calibrator_subclasses_the_real_binding_in_supported_versions(probes, stand_in_libs):
    for requirement, wheel, _ in WHEELS:
        version = requirement.split("==")[1]
        result = run_with_bindings(stand_in_libs, CACHE / wheel.removesuffix(".whl"),
                                   CALIBRATOR_IMPORT)
        if _major(version) in SUPPORTED_TENSORRT_MAJORS:
            assert result.returncode == 0, f"{requirement}: {result.stderr[-2000:]}"
            assert "IInt8EntropyCalibrator2" in result.stdout
        else:
            assert "IInt8EntropyCalibrator2" in result.stderr  # AttributeError at import


MONITOR = r"""
import sys
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as trt
sys.modules["tensorrt"] = trt
from convert.tensorrt.progress import make_progress_monitor
monitor = make_progress_monitor(trt)
if monitor is None:
    print("none", hasattr(trt.IBuilderConfig, "progress_monitor"))
else:
    overridden = [m for m in ("phase_start", "step_complete", "phase_finish")
                  if m in dir(trt.IProgressMonitor)]
    monitor.phase_start("Building engine", None, 2)
    print(isinstance(monitor, trt.IProgressMonitor), overridden,
          monitor.step_complete("Building engine", 0))
    monitor.phase_finish("Building engine")
"""


def test_the_build_progress_monitor_subclasses_the_real_binding_where_there_is_one(
    probes, stand_in_libs
):
    seen = {}
    for requirement, wheel, _ in WHEELS:
        version = requirement.split("==")[1]
        result = run_with_bindings(stand_in_libs, CACHE / wheel.removesuffix(".whl"), MONITOR)
        assert result.returncode == 0, f"{requirement}: {result.stderr[-2000:]}"
        seen[version] = result.stdout.strip()
    assert seen.pop("8.6.1") == "none False"  # no interface, and no config property to set
    for version, line in seen.items():  # the methods TensorRT calls are the ones overridden
        assert line == "True ['phase_start', 'step_complete', 'phase_finish'] True", version


def test_deprecated_uses_are_surfaced_and_in_the_compatibility_table(probes):
    """The bindings' docstrings say "[DEPRECATED] Deprecated in TensorRT X.Y" (the warning the
    test configuration's filter hides); each deprecated use must be a row of docs/convert.md."""
    deprecated = {}
    for probe in probes.values():
        for name, since in probe["deprecated"].items():
            deprecated.setdefault(name, since)
    assert {"FP16", "INT8", "set_calibration_profile"} <= set(deprecated), deprecated
    warnings.warn(f"TensorRT deprecations the layer uses: {sorted(deprecated.items())}",
                  UserWarning, stacklevel=1)
    table = (REPO / "docs/convert.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    undocumented = {n: v for n, v in deprecated.items()
                    if not any(f"`{n}`" in r and f"{v}" in r for r in rows)}
    assert not undocumented, f"add to docs/convert.md's compatibility table: {undocumented}"


CALIBRATOR_FAILURE = r"""
import sys, types
import numpy as np
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as trt
sys.modules["tensorrt"] = trt
from convert.tensorrt.calibrator import TileCalibrator
copies = []
def memcpy_htod(device, chunk):
    if copies:
        raise RuntimeError("cuMemcpyHtoD failed: an illegal memory access")
    copies.append(len(chunk))
class Allocation:
    def __int__(self):
        return 4096
    def free(self):
        pass
cuda = types.SimpleNamespace(MemoryError=MemoryError, memcpy_htod=memcpy_htod,
                             mem_alloc=lambda n: Allocation())
calibrator = TileCalibrator(np.zeros((8, 4, 4, 3), np.float32), 2, sys.argv[2], cuda)
assert isinstance(calibrator, trt.IInt8EntropyCalibrator2)
print(calibrator.get_batch_size(), calibrator.get_batch(["tiles"]) == [4096],
      calibrator.get_batch(["tiles"]), calibrator.get_batch(["tiles"]))
print(calibrator.failure)
calibrator.close()
"""


def test_a_get_batch_failure_is_recorded_on_the_real_binding(probes, stand_in_libs, tmp_path):
    for requirement, wheel, _ in WHEELS:
        if _major(requirement.split("==")[1]) not in SUPPORTED_TENSORRT_MAJORS:
            continue
        result = run_with_bindings(stand_in_libs, CACHE / wheel.removesuffix(".whl"),
                                   CALIBRATOR_FAILURE, str(tmp_path / "calibration.cache"))
        assert result.returncode == 0, f"{requirement}: {result.stderr[-2000:]}"
        assert result.stdout.splitlines() == [
            "2 True None None",  # stops at the failure, and stays stopped
            "INT8 calibration failed at tile 2 of 8: RuntimeError: cuMemcpyHtoD failed: an "
            "illegal memory access",
        ]
