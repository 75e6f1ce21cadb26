"""Model packages (NAME.sipkg): what an ML engineer ships to every line PC, read and checked here.

A package is a plain POSIX tar written by `convert package` with these members (flat, no folders):

  package.json     this index: format, format_version, model, members {name: {sha256, bytes}}
  model.onnx       the exported ONNX (probabilities, and `cam` when exported with it)
  modelcard.json   the model card (classes, thresholds, the Keras test F1 the gate compares with)
  gate.npz         the gate set: test-split evaluation crops and frames (tiles + labels) and
                   validation crops, cut as `train.evaluation` cuts them
  calibration.npz  INT8 calibration tiles, from the training split only

`open_package` validates it before anything is built from it: a member missing or not listed, a
member whose sha256 or size differs from the index (damaged or tampered), or an unknown format
version is a one-line `PackageError`. The package's digest is the sha256 of its index, which names
every member's hash, so it identifies the whole content.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.errors import PackageError
from edge.inference.modelcard import MODELCARD_FILE, ModelCard

FORMAT = "steel-inspect-model-package"
FORMAT_VERSION = 1
INDEX = "package.json"
ONNX_MEMBER = "model.onnx"
GATE_MEMBER = "gate.npz"
CALIBRATION_MEMBER = "calibration.npz"
REQUIRED_MEMBERS = (ONNX_MEMBER, MODELCARD_FILE, GATE_MEMBER, CALIBRATION_MEMBER)
SUFFIX = ".sipkg"
_BLOCK = 1 << 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelPackage:
    """A validated package: its index, card and digest; `extract` writes its members out."""

    path: Path
    index: dict
    digest: str  # sha256 of package.json
    card: ModelCard

    @property
    def version(self) -> str:
        """The model store's name for it: card version + the first 8 hex of the digest."""
        return f"{_SAFE.sub('_', self.card.version).strip('._') or 'model'}-{self.digest[:8]}"

    def extract(self, folder: Path) -> Path:
        """Write every member into `folder` (created), hashes checked again; returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        members = self.index["members"]
        with _open_tar(self.path) as tar, _readable(self.path):
            for info in tar.getmembers():
                if info.name == INDEX or info.name not in members:
                    continue
                target = folder / info.name
                digest = _copy(tar.extractfile(info), target)
                if digest != members[info.name]["sha256"]:
                    raise PackageError(f"{self.path}: member {info.name} changed while "
                                       "extracting (sha256 differs)")
        (folder / INDEX).write_text(json.dumps(self.index, indent=2) + "\n")
        return folder


def open_package(path: Path) -> ModelPackage:
    """Open and validate `path`; PackageError (one line, naming the file) if anything is off."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: model package not found")
    with _open_tar(path) as tar, _readable(path):
        members = {}
        for info in tar.getmembers():
            if not info.isfile() or "/" in info.name or info.name in ("", ".", ".."):
                raise PackageError(f"{path}: member {info.name!r} is not a plain file of the "
                                   "package (not written by convert package)")
            if info.name in members:
                raise PackageError(f"{path}: member {info.name} appears twice")
            members[info.name] = info
        if INDEX not in members:
            raise PackageError(f"{path}: missing member {INDEX}: not a model package")
        raw = tar.extractfile(members[INDEX]).read()
        index = _parse_index(path, raw)
        listed = index["members"]
        for name in REQUIRED_MEMBERS:
            if name not in listed:
                raise PackageError(f"{path}: {INDEX} lists no member {name}")
        for name in members:
            if name != INDEX and name not in listed:
                raise PackageError(f"{path}: member {name} is not listed in {INDEX}")
        for name, record in listed.items():
            if name not in members:
                raise PackageError(f"{path}: missing member {name}")
            _check_member(path, tar, members[name], record)
        card_raw = tar.extractfile(members[MODELCARD_FILE]).read()
    card = _parse_card(path, card_raw)
    return ModelPackage(path, index, hashlib.sha256(raw).hexdigest(), card)


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise PackageError(f"{path}: not a model package (cannot read it as tar: {exc})") from None


@contextmanager
def _readable(path: Path):
    """A tar cut short (an interrupted copy) or damaged past its headers fails while reading."""
    try:
        yield
    except (tarfile.TarError, EOFError) as exc:
        raise PackageError(f"{path}: truncated or damaged ({exc}); copy it again") from None


def _parse_index(path: Path, raw: bytes) -> dict:
    try:
        index = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path}: {INDEX} is not JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise PackageError(f"{path}: {INDEX} is not a {FORMAT} index")
    version = index.get("format_version")
    if version != FORMAT_VERSION:
        raise PackageError(f"{path}: package format_version {version!r} is unknown (this "
                           f"steel-inspect reads {FORMAT_VERSION}); install a matching release")
    members = index.get("members")
    if not isinstance(members, dict) or not all(
        isinstance(r, dict) and isinstance(r.get("sha256"), str) and isinstance(r.get("bytes"), int)
        for r in members.values()
    ):
        raise PackageError(f"{path}: {INDEX}: members must map names to {{sha256, bytes}}")
    return index


def _check_member(path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo, record: dict) -> None:
    if info.size != record["bytes"]:
        raise PackageError(f"{path}: member {info.name} has {info.size} bytes, {INDEX} says "
                           f"{record['bytes']} (damaged or tampered)")
    digest = hashlib.sha256()
    stream = tar.extractfile(info)
    for block in iter(lambda: stream.read(_BLOCK), b""):
        digest.update(block)
    if digest.hexdigest() != record["sha256"]:
        raise PackageError(f"{path}: member {info.name} does not match its sha256 in {INDEX} "
                           "(damaged or tampered)")


def _parse_card(path: Path, raw: bytes) -> ModelCard:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path}: {MODELCARD_FILE} is not JSON ({exc})") from None
    return ModelCard.from_dict(data, source=f"{path}: {MODELCARD_FILE}")


def _copy(stream, target: Path) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for block in iter(lambda: stream.read(_BLOCK), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()
