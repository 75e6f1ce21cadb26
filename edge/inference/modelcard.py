"""The model card: what every stage after training needs to know about a model.

`train fit` writes RUN_DIR/modelcard.json; `convert` reads it (thresholds, the Keras test F1 the
gate compares with) and embeds it in an engine's manifest; the daemon reads classes and thresholds.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ModelError

MODELCARD_FILE = "modelcard.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassInfo(_Strict):
    id: int = Field(ge=1, description="project class id (1-based), train.csv after the class map")
    name: str = Field(min_length=1, description="human-readable class name, e.g. 'scratches'")


class InputInfo(_Strict):
    name: str = Field("image", description="ONNX/engine input tensor name")
    height: int = Field(256, ge=1, description="tile height in pixels")
    width: int = Field(256, ge=1, description="tile width in pixels")
    channels: int = Field(1, description="1 = grayscale pixels; the model repeats them if needed")
    dtype: Literal["uint8"] = Field("uint8", description="raw pixels: all normalisation is inside")
    layout: Literal["NHWC"] = Field("NHWC", description="batch, height, width, channels")


class OutputInfo(_Strict):
    name: str = Field("probabilities", description="output tensor name")
    activation: Literal["sigmoid"] = Field("sigmoid", description="outputs are FP32 probabilities")


class ModelCard(_Strict):
    schema_version: Literal[1] = 1
    name: str = Field(description="model name, e.g. 'steel-resnet152'")
    arch: str = Field(description="registry name of the architecture, e.g. 'resnet152'")
    version: str = Field(description="model version string (run id or semantic version)")
    created: str = Field(description="UTC ISO-8601 time the run finished")
    classes: list[ClassInfo] = Field(min_length=1, description="output columns, in order")
    input: InputInfo = Field(default_factory=InputInfo)
    output: OutputInfo = Field(default_factory=OutputInfo)
    thresholds: list[float] = Field(description="per-class thresholds chosen by F1 on validation")
    crop_label_rule: dict[str, Any] = Field(
        default_factory=dict, description="how a tile's labels follow from masks, e.g. min_pixels"
    )
    data: dict[str, Any] = Field(default_factory=dict, description="data folder, hash, splits")
    metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="train.metrics.metrics_table results: metrics[split][crops|frames]",
    )
    training: dict[str, Any] = Field(default_factory=dict, description="hyper-parameters, seeds")
    software: dict[str, str] = Field(default_factory=dict, description="package versions")

    @model_validator(mode="after")
    def _thresholds_match_classes(self) -> ModelCard:
        if len(self.thresholds) != len(self.classes):
            raise ValueError(
                f"{len(self.thresholds)} thresholds for {len(self.classes)} classes"
            )
        if any(not 0.0 < t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must lie in (0, 1), got {self.thresholds}")
        return self

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def save(self, path: Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: model card not found") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: cannot read model card: {exc}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "model card") -> ModelCard:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ModelError(f"{source}: {where}: {first['msg']}") from None


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions, for cards and manifests (absent: left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
