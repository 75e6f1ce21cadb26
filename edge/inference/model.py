"""Load a deployable model: the runtime plus the classes and thresholds it was validated with.

- `X.onnx` (backend onnxruntime): the card comes from `X.onnx.json` (a build-engine manifest) if
  present, else from `modelcard.json` in the same folder (what `convert export-onnx` leaves). A
  manifest is checked too: built for this backend, the engine file and ONNX hashes unchanged.
- an engine `X` (backend tensorrt): `X.json` (the manifest) is required and checked against this
  machine by `edge.inference.manifest` (TensorRT version, GPU, ONNX hash).
- a model store folder (`edge model install`), its `current` link or a version folder: the
  engine of the version `current` points at when loading (`edge.inference.store`).

Either way the model must have passed its gate (`edge.inference.admission`): a manifest with
`gate.passed: false` or a bare ONNX is refused unless `allow_ungated` (commissioning).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ModelError
from edge.inference.admission import Admission, admit
from edge.inference.cpuflags import cpu_flags, int8_unsuited
from edge.inference.manifest import check_manifest, file_sha256, manifest_path
from edge.inference.modelcard import MODELCARD_FILE, ModelCard
from edge.inference.runtime import Runtime, load_runtime
from edge.inference.store import resolve_model_path

log = logging.getLogger(__name__)

NO_CAM = "no class activation map output 'cam': defect boxes stay tile-sized"


@dataclass
class LoadedModel:
    runtime: Runtime
    card: ModelCard
    path: Path
    sha256: str
    manifest: dict | None
    admission: Admission = field(default_factory=lambda: Admission(passed=True))

    @property
    def thresholds(self) -> list[float]:
        return list(self.card.thresholds)

    def close(self) -> None:
        self.runtime.close()


def read_manifest(path: Path) -> dict | None:
    mpath = manifest_path(path)
    if not mpath.exists():
        return None
    try:
        return json.loads(mpath.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{mpath}: cannot read the engine manifest: {exc}") from None


def load_card(path: Path, manifest: dict | None) -> ModelCard:
    if manifest is not None:
        if "card" not in manifest:
            raise ModelError(f"{manifest_path(path)}: manifest has no 'card' section")
        return ModelCard.from_dict(manifest["card"], source=f"{manifest_path(path)}: card")
    card_path = path.with_name(MODELCARD_FILE)
    if not card_path.exists():
        raise ModelError(
            f"{path}: no manifest {manifest_path(path).name} and no {MODELCARD_FILE} beside it"
        )
    return ModelCard.load(card_path)


def input_mismatch(spec, card: ModelCard) -> str | None:
    """Why the runtime's input does not take the card's tiles (None if it does)."""
    got = (spec.height, spec.width, spec.channels)
    want = (card.input.height, card.input.width, card.input.channels)
    if got == want:
        return None
    return (
        f"input {spec.name} is [N, {', '.join(map(str, got))}] (NHWC) but the model card says "
        f"[N, {', '.join(map(str, want))}]; the model and its card do not belong together"
    )


def check_engine_manifest(manifest: dict, path: Path, backend: str) -> None:

    built_for = manifest.get("backend")
    if built_for is not None and built_for != backend:
        raise ModelError(
            f"{manifest_path(path)}: engine was built for backend {built_for}, "
            f"but model.backend is {backend}"
        )
    check_manifest(manifest, path)


def load_model(
    path: Path, backend: str, *, allow_ungated: bool = False, **runtime_options
) -> LoadedModel:
    path = resolve_model_path(path)  # a model store or version folder -> its engine
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    manifest = read_manifest(path)
    if backend == "tensorrt" and manifest is None:
        raise ModelError(
            f"{path}: engine has no manifest {manifest_path(path).name}; "
            "rebuild with convert build-engine"
        )
    admission = admit(path, manifest, allow_ungated)
    if manifest is not None:  # an engine of either backend: it must be the file it describes
        check_engine_manifest(manifest, path, backend)
        if unsuited := int8_unsuited(manifest, cpu_flags()):
            log.warning("%s: %s", path, unsuited)
    card = load_card(path, manifest)
    runtime = load_runtime(backend, path, **runtime_options)
    if runtime.num_outputs != len(card.classes):
        runtime.close()
        raise ModelError(
            f"{path}: model has {runtime.num_outputs} outputs but its card names "
            f"{len(card.classes)} classes"
        )
    problem = input_mismatch(runtime.input_spec, card)
    if problem:
        runtime.close()
        raise ModelError(f"{path}: {problem}")
    if runtime.cam_shape is None and runtime.cam_problem is None:  # a dropped cam said why
        log.warning("%s: %s; re-export it with convert export-onnx to get them", path, NO_CAM)
    # check_manifest has just hashed the file and found it equal to the manifest's record
    sha256 = manifest["engine_sha256"] if manifest is not None else file_sha256(path)
    return LoadedModel(runtime=runtime, card=card, path=path, sha256=sha256, manifest=manifest,
                       admission=admission)
