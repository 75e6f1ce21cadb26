"""Engine manifests (PATH.json beside an engine): the check that an engine fits this machine.

A TensorRT engine runs only with the TensorRT version and the GPU it was built for. The manifest
written by `convert build-engine` records them; `check_manifest` refuses a mismatch before
TensorRT gets to fail obscurely. The probes are separate from the comparison so the comparison is
tested without TensorRT or a GPU: pass `platform=` (a `Platform`) to `check_manifest`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
REBUILD = "rebuild with convert build-engine"
# TensorRT majors the builder and runtime support. 11 removed the implicit-precision flags
# (BuilderFlag.FP16/INT8, ILayer.precision) and the INT8 calibrator API the builder uses, so the
# `tensorrt` extra and systemd/install.sh cap it below 11 (tests/test_tensorrt_api.py checks both).
SUPPORTED_TENSORRT_MAJORS = (8, 10)
OLDEST_TENSORRT = "8.6.1"
INSTALL_HINT = (
    "pip install steel-inspect[tensorrt] (TensorRT 8.6.1 with CUDA 11.8/12.x for GTX 10xx Pascal "
    "SM 6.x; TensorRT >= 10, < 11 for Turing SM 7.5 and newer)"
)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


@dataclass(frozen=True)
class Platform:
    """What an engine is tied to: TensorRT version and GPU."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "6.1"

    def as_manifest(self) -> dict:
        return {
            "backend_version": self.tensorrt_version,
            "gpu": {"name": self.gpu_name, "compute_capability": self.compute_capability},
        }


def tensorrt_version() -> str:
    try:
        import tensorrt  # noqa: PLC0415
    except ImportError as exc:
        raise ModelError(f"tensorrt is not importable ({exc}); {INSTALL_HINT}") from None
    return tensorrt.__version__


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(name, "major.minor") of CUDA device `device`, through pycuda."""
    try:
        import pycuda.driver as cuda  # noqa: PLC0415
    except ImportError as exc:
        raise ModelError(f"pycuda is not importable ({exc}); {INSTALL_HINT}") from None
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise ModelError(f"no usable CUDA driver or GPU ({exc})") from None
    if count <= device:
        raise ModelError(f"no CUDA GPU {device}: this machine has {count}")
    gpu = cuda.Device(device)
    major, minor = gpu.compute_capability()
    return gpu.name(), f"{major}.{minor}"


def probe_platform(device: int = 0) -> Platform:
    name, capability = gpu_identity(device)
    return Platform(tensorrt_version(), name, capability)


# Oldest GPU generation each TensorRT major version builds for (compute capability).
MIN_CAPABILITY = {8: (5, 0), 9: (7, 5), 10: (7, 5)}


def capability_problem(tensorrt_version: str, capability: str) -> str | None:
    """Why TensorRT `tensorrt_version` cannot build for a GPU of `capability` (None: it can)."""
    major = int(tensorrt_version.split(".")[0])
    sm = tuple(int(p) for p in capability.split("."))
    floor = MIN_CAPABILITY[max(k for k in MIN_CAPABILITY if k <= major)] if major >= 8 else None
    if floor is None:
        return f"TensorRT {tensorrt_version} is too old; {INSTALL_HINT}"
    if major > max(SUPPORTED_TENSORRT_MAJORS):
        return (
            f"TensorRT {tensorrt_version} is not supported (11 removed the implicit-precision and "
            f"INT8 calibrator API the builder uses); pip install 'tensorrt>=10,<11'"
        )
    if sm < floor:
        hint = (
            "install TensorRT 8.6.1 (the last release for Pascal GTX 10xx)"
            if sm >= MIN_CAPABILITY[8] else "this GPU is too old for TensorRT"
        )
        return (
            f"TensorRT {tensorrt_version} does not support compute capability {capability} "
            f"(needs >= {floor[0]}.{floor[1]}); {hint}"
        )
    return None


def version_key(version: str) -> tuple[str, ...]:
    """Engines are tied to major.minor.patch ("8.6.1.post1" and "8.6.1.6" both give 8.6.1)."""
    return tuple(version.split(".")[:3])


def mismatches(manifest: dict, platform: Platform) -> list[str]:
    """Why an engine built as `manifest` says cannot run on `platform` (empty: it can)."""
    problems = []
    built = str(manifest.get("backend_version", "?"))
    if version_key(built) != version_key(platform.tensorrt_version):
        problems.append(
            f"built with TensorRT {built}, this machine has {platform.tensorrt_version}"
        )
    gpu = manifest.get("gpu") or {}
    name, capability = gpu.get("name", "?"), str(gpu.get("compute_capability", "?"))
    if name != platform.gpu_name or capability != platform.compute_capability:
        problems.append(
            f"built for GPU {name!r} (SM {capability}), this machine has "
            f"{platform.gpu_name!r} (SM {platform.compute_capability})"
        )
    return problems


def check_manifest(
    manifest: dict,
    engine_path: Path,
    *,
    platform: Platform | None = None,
    onnx_path: Path | None = None,
) -> None:
    """Refuse (ModelError) an engine whose file, TensorRT version, GPU or ONNX differ.

    `platform` defaults to probing this machine. `onnx_path` (default: the ONNX the manifest
    names, when it still exists) must still have the hash the engine was built from.
    """

    engine_path = Path(engine_path)
    where = manifest_path(engine_path)
    version = manifest.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise ModelError(
            f"{where}: manifest_version {version!r} is not {MANIFEST_VERSION}; {REBUILD}"
        )
    recorded = manifest.get("engine_sha256")
    if recorded != file_sha256(engine_path):
        raise ModelError(f"{engine_path}: file does not match its manifest {where.name} "
                         f"(sha256 differs); {REBUILD}")
    _check_onnx(manifest, where, onnx_path)
    if manifest.get("backend") != "tensorrt":
        return
    problems = mismatches(manifest, platform if platform is not None else probe_platform())
    if problems:
        raise ModelError(f"{engine_path}: {'; '.join(problems)}; {REBUILD}")


def _check_onnx(manifest: dict, where: Path, onnx_path: Path | None) -> None:

    recorded_path, recorded = manifest.get("onnx_path"), manifest.get("onnx_sha256")
    path = Path(onnx_path) if onnx_path is not None else Path(recorded_path or "")
    if onnx_path is None and not (recorded_path and path.is_file()):
        log.debug("%s: source ONNX %s not here; ONNX hash not checked", where, path)
        return
    if not path.is_file():
        raise ModelError(f"{path}: ONNX model not found")
    actual = file_sha256(path)
    if actual != recorded:
        raise ModelError(
            f"{where}: engine was built from ONNX sha256 {str(recorded)[:12]}, "
            f"{path} is now {actual[:12]}; {REBUILD}"
        )
