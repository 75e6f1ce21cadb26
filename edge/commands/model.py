"""`edge model install|list|rollback|remove`: the line PC's model store (edge.inference.store).

`install PKG` validates the package, builds the engine that suits this machine, gates it on the
package's gate set against the card's Keras F1 and, only if the gate passes, installs it as a new
version and switches `current` to it (exit 3 and nothing switched when the gate refuses). A
running daemon whose model.path names the store takes it on `systemctl reload`.

Building an engine is the convert stage's work (ONNX Runtime quantisation, the TensorRT builder),
so `install` imports `convert` when it runs, and only then; the daemon and the other `edge`
commands never do (docs/line-pc.md, "Deploying models").
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

from edge.argtypes import f1_drop, positive_int
from edge.errors import ModelError
from edge.inference.cpuflags import VNNI_FLAGS, cpu_flags, inference_threads
from edge.inference.store import DEFAULT_STORE, ModelStore

log = logging.getLogger(__name__)

RELOAD_HINT = "a running daemon takes it on `systemctl reload steel-inspect-edge`"
ENGINE_FILES = {"onnxruntime": "engine.onnx", "tensorrt": "engine.plan"}
PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)




def _store_option(parser) -> None:
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE,
                        help=f"model store folder (default {DEFAULT_STORE})")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = sub.add_parser("install", help="build, gate and install a model package")
    install.add_argument("package", type=Path, help="model package from convert package (.sipkg)")
    install.add_argument("--precision", choices=("fp16", "fp32", "int8"), default=None,
                         help="default: int8 on a CPU with VNNI, else fp32; fp16 on TensorRT")
    install.add_argument("--backend", choices=("tensorrt", "onnxruntime"), default=None,
                         help="default: tensorrt where an NVIDIA GPU and TensorRT are usable, "
                              "else onnxruntime")
    install.add_argument("--max-batch", type=positive_int, default=8,
                         help="largest batch the engine takes (default 8; 7 tiles per frame)")
    install.add_argument("--max-f1-drop", type=f1_drop, default=0.01,
                         help="largest allowed absolute F1 drop per class (default 0.01)")
    install.add_argument("--threads", type=int, default=0,
                         help="CPU threads for the gate (0: physical cores minus one)")
    install.add_argument("--no-onnx-row", dest="onnx_row", action="store_false",
                         help="gate without the FP32 ONNX row (the CPU scores the gate set "
                              "once, not twice: hours less for a big model on TensorRT); the "
                              "gate then decides on the absolute drop, not paired")
    _store_option(install)
    _store_option(sub.add_parser("list", help="installed versions; * current, - previous"))
    _store_option(sub.add_parser("rollback", help="make the previous version current again"))
    remove = sub.add_parser("remove", help="delete an installed version (not the current one)")
    remove.add_argument("version", help="version name as edge model list shows it")
    remove.add_argument("--force", action="store_true",
                        help="also remove the previous version (the rollback target)")
    _store_option(remove)


def run(args) -> int:
    store = ModelStore(args.store)
    try:
        return _run(args, store)
    except OSError as exc:
        where = exc.filename or store.root
        if exc.errno in PERMISSION_ERRNOS:  # a store the user may not write
            raise ModelError(f"{where}: {exc.strerror}; run as the service user: "
                             "sudo -u steel-inspect edge model ...") from None
        raise ModelError(f"{where}: {exc.strerror or exc}") from None


def _run(args, store: ModelStore) -> int:
    if args.action == "install":
        return install(args, store)
    if args.action == "list":
        return list_versions(store)
    with store.locked():
        if args.action == "rollback":
            old, new = store.rollback()
            print(f"current: {old} -> {new}; {RELOAD_HINT}")
        else:
            store.remove(args.version, force=args.force)
            print(f"removed {args.version}")
    return 0


def list_versions(store: ModelStore) -> int:
    versions, unreadable = store.scan()
    for problem in unreadable:
        print(f"! {problem}")
    if not versions:
        print(f"{store.root}: no model installed yet: edge model install PKG")
        return 0
    current, previous = store.current, store.previous
    for v in versions:
        mark = "*" if v.name == current else "-" if v.name == previous else " "
        r = v.record
        print(f"{mark} {v.name:<28} {r.get('model', '?'):<20} {r.get('backend', '?')} "
              f"{r.get('precision', '?'):<5} gate {'passed' if r.get('gate_passed') else '?'}  "
              f"installed {r.get('installed', '?')}")
    return 0


def gpu_backend_usable() -> tuple[bool, str]:
    """(TensorRT usable here, why not): an NVIDIA GPU, TensorRT and pycuda."""
    from edge.inference.manifest import probe_platform  # noqa: PLC0415

    try:
        platform = probe_platform()
    except ModelError as exc:
        return False, str(exc)
    return True, f"{platform.gpu_name} (SM {platform.compute_capability}), TensorRT " \
                 f"{platform.tensorrt_version}"


def choose_engine(backend: str | None, precision: str | None) -> tuple[str, str, str]:
    """(backend, precision, why) for this machine, unless given."""
    why = []
    if backend is None:
        usable, reason = gpu_backend_usable()
        backend = "tensorrt" if usable else "onnxruntime"
        why.append(f"backend {backend}: {reason}" if usable else
                   f"backend onnxruntime (CPU): no usable GPU ({reason})")
        if not usable and Path("/proc/driver/nvidia").exists():
            log.warning("this machine has an NVIDIA driver but TensorRT is not usable (%s); "
                        "building for the CPU", reason)
    if precision is None:
        if backend == "tensorrt":
            precision = "fp16"
            why.append("precision fp16 (TensorRT keeps FP32 where the GPU has no fast FP16)")
        else:
            vnni = sorted(f for f in VNNI_FLAGS if f in cpu_flags())
            precision = "int8" if vnni else "fp32"
            why.append(f"precision int8: this CPU has {', '.join(vnni)}" if vnni else
                       "precision fp32: no VNNI on this CPU (INT8 would not be faster, FP16 "
                       "is slower than FP32 on a CPU)")
    return backend, precision, "; ".join(why)


def _convert_stage():
    try:
        from convert.build import BuildOptions  # noqa: PLC0415
        from convert.errors import GateFailed  # noqa: PLC0415
        from convert.install import build_from_package  # noqa: PLC0415
    except ImportError as exc:
        raise ModelError(f"edge model install builds the engine with the convert stage, which "
                         f"cannot be imported here ({exc}); pip install "
                         "'steel-inspect[edge,convert]'") from None
    return BuildOptions, GateFailed, build_from_package


def install(args, store: ModelStore) -> int:
    from edge.inference.package import open_package  # noqa: PLC0415

    package = open_package(args.package)
    BuildOptions, GateFailed, build_from_package = _convert_stage()
    backend, precision, why = choose_engine(args.backend, args.precision)
    print(f"package {args.package}: {package.card.name} {package.card.version} -> version "
          f"{package.version}")
    if why:
        print(why)
    with store.locked():  # held only to check and to commit: rollback and remove never wait
        _refuse_installed(store, package)  # for a build (minutes, hours on TensorRT INT8)
    staging = store.staging(package.version)  # per process: builds need no lock
    try:
        opts = BuildOptions(
            run=staging, out=staging / ENGINE_FILES[backend], precision=precision,
            backend=backend, max_batch=args.max_batch, max_f1_drop=args.max_f1_drop,
            threads=inference_threads(args.threads),
            timing_cache=store.root / ".tensorrt-timing.cache", verbose=args.verbose,
            onnx_row=args.onnx_row,
        )
        outcome = build_from_package(package, staging, opts)
        print(outcome.report.format_table())
        for note in outcome.manifest["precision_notes"]:
            print(f"note: {note}")
        if not outcome.passed:
            report = outcome.report
            raise GateFailed(
                f"gate refused {package.version} ({', '.join(report.failing_columns())}): "
                f"{'; '.join(str(f) for f in report.failures)}; nothing installed, current "
                f"stays {store.current or '(none)'}")
        with store.locked():
            _refuse_installed(store, package)  # another install of it may have finished
            old = store.commit(_keep_engine(staging, package), package.version,
                               _record(args, package, outcome))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"installed {package.version} ({backend} {outcome.manifest['effective_precision']}) "
          f"in {store.root}; current: {old or '(none)'} -> {package.version}; {RELOAD_HINT}")
    return 0


def _refuse_installed(store: ModelStore, package) -> None:
    if store.has(package.version):
        state = " and current" if store.current == package.version else ""
        raise ModelError(f"{package.version}: already installed{state} in {store.root}; "
                         f"edge model remove {package.version} first to rebuild it")


def _keep_engine(staging: Path, package) -> Path:
    """The version folder keeps the engine, its manifest and the package's index."""
    shutil.copyfile(staging / "package" / "package.json", staging / "package.json")
    shutil.rmtree(staging / "package")
    for leftover in staging.glob(".calibration-*"):  # the quantiser's cache: not needed to run
        leftover.unlink()
    return staging


def _record(args, package, outcome) -> dict:
    manifest = outcome.manifest
    return {
        "engine_file": manifest["engine_file"],
        "model": package.card.name,
        "model_version": package.card.version,
        "backend": manifest["backend"],
        "precision": manifest["effective_precision"],
        "gate_passed": outcome.passed,
        "package_file": str(Path(args.package).resolve()),
        "package_digest": package.digest,
    }
