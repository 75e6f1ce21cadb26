"""Deterministic train/validation/test splits, stratified by label combination.

Default proportions are the paper's: 10482 / 2790 / 1558 of 14830 images. Images are stratified
by their label combination (e.g. "scratches + rolling films"); with `groups` (e.g. the coil of
each image) whole groups are assigned, so no group spans two splits, and a group's stratum is the
union of its images' labels. Within a stratum, units go, largest first, to the split furthest
below its share; when a stratum has at least as many units as splits, each split first gets one,
else the units go to train, then validation, then test.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from edge.archive.files import write_atomic
from edge.errors import DataError
from train.data.problems import name_some

SPLIT_NAMES = ("train", "validation", "test")
PAPER_SPLIT_COUNTS = (10482, 2790, 1558)
DEFAULT_FRACTIONS = tuple(n / sum(PAPER_SPLIT_COUNTS) for n in PAPER_SPLIT_COUNTS)
FORMAT_VERSION = 1


def make_splits(folder, seed: int = 0, fractions=None, groups=None) -> dict[str, list[str]]:
    """{"train": ids, "validation": ids, "test": ids}, each sorted; `groups` maps ImageId->group."""
    fractions = _check_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    units = _units(folder, groups)
    strata: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for unit, (key, members) in sorted(units.items()):
        strata[key].append((unit, members))
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for key in sorted(strata):
        members = strata[key]
        order = rng.permutation(len(members))
        for split, unit_members in _assign([members[i] for i in order], fractions):
            splits[split].extend(unit_members)
    return {name: sorted(ids) for name, ids in splits.items()}


def _check_fractions(fractions) -> np.ndarray:
    values = np.asarray(fractions, dtype=float)
    if values.shape != (len(SPLIT_NAMES),) or np.any(values < 0) or values.sum() <= 0:
        raise DataError(f"split fractions {list(fractions)} must be 3 values >= 0 (train/val/test)")
    return values / values.sum()


def label_key(labels_row) -> str:
    """Stratum name of a label row: '1+3' for classes 1 and 3, 'none' for defect-free."""
    present = [str(c + 1) for c, v in enumerate(labels_row) if v]
    return "+".join(present) or "none"


def _units(folder, groups) -> dict[str, tuple[str, list[str]]]:
    """unit name -> (stratum key, image ids); a unit is an image or a group of images."""
    if groups is None:
        return {
            image_id: (label_key(row), [image_id])
            for image_id, row in zip(folder.image_ids, folder.labels, strict=True)
        }
    missing = [i for i in folder.image_ids if i not in groups]
    if missing:
        raise DataError(f"{len(missing)} images have no group: {name_some(missing)}")
    members: dict[str, list[int]] = defaultdict(list)
    for position, image_id in enumerate(folder.image_ids):
        members[str(groups[image_id])].append(position)
    return {
        group: (label_key(folder.labels[rows].any(axis=0)), [folder.image_ids[r] for r in rows])
        for group, rows in members.items()
    }


def _assign(units, fractions: np.ndarray):
    """(split name, image ids) for each unit of one stratum, in a deterministic order."""
    counts = np.zeros(len(SPLIT_NAMES))
    ordered = sorted(units, key=lambda u: -len(u[1]))  # stable: keeps the shuffled order on ties
    seeded = []
    wanted = [s for s in np.argsort(fractions, kind="stable") if fractions[s] > 0]
    if len(ordered) < len(wanted):
        # Too few to give every split one: train first, then validation, then test.
        for split, unit in zip(sorted(wanted), ordered, strict=False):
            yield SPLIT_NAMES[split], unit[1]
        return
    # The smallest units seed the splits so a big group never lands in a small split by rule.
    for split, unit in zip(wanted, ordered[::-1], strict=False):
        seeded.append(unit)
        counts[split] += len(unit[1])
        yield SPLIT_NAMES[split], unit[1]
    for unit in ordered:
        if any(unit is s for s in seeded):
            continue
        total = counts.sum() + len(unit[1])
        split = int(np.argmax(fractions * total - counts))
        counts[split] += len(unit[1])
        yield SPLIT_NAMES[split], unit[1]


def read_groups(path) -> dict[str, str]:
    """ImageId -> group from a CSV with a header `ImageId,<group column>`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read groups file ({exc.strerror or exc})") from None
    reader = csv.reader(lines)
    header = next(reader, [])
    if len(header) != 2 or header[0].strip() != "ImageId":
        raise DataError(f"{path}: header must be 'ImageId,<group>', got '{','.join(header)}'")
    groups: dict[str, str] = {}
    for line, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            got = ",".join(fields)
            raise DataError(f"{path} row {line}: expected 'ImageId,group', got '{got}'")
        image_id = fields[0].strip()
        if image_id in groups:
            raise DataError(f"{path} row {line}: image {image_id} is listed twice")
        groups[image_id] = fields[1].strip()
    return groups


def write_splits(path, splits: dict[str, list[str]], meta: dict) -> Path:
    """JSON {"format", "meta", "splits"}; meta should carry "data_hash" (folder.content_hash())."""
    path = Path(path)
    document = {"format": FORMAT_VERSION, "meta": meta, "splits": splits}
    write_atomic(path, (json.dumps(document, indent=1) + "\n").encode())  # mkdir included
    return path


def read_splits_file(path) -> tuple[dict[str, list[str]], dict]:
    """(splits, meta) of a splits file written by write_splits."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: splits file not found (write one with `train split`)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable splits JSON file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise DataError(f"{path}: not a splits file of format {FORMAT_VERSION}")
    splits = document.get("splits")
    if not isinstance(splits, dict):
        raise DataError(f"{path}: not a splits file of format {FORMAT_VERSION}")
    missing = [name for name in SPLIT_NAMES if name not in splits]
    if missing:
        raise DataError(f"{path}: splits {', '.join(missing)} are missing")
    return splits, document.get("meta", {})


def read_splits(path, data_hash: str | None = None) -> dict[str, list[str]]:
    """Splits of `path`; with `data_hash`, DataError when the file was made for other data."""
    splits, meta = read_splits_file(path)
    if data_hash is not None and meta.get("data_hash") != data_hash:
        raise DataError(
            f"{path}: made for data {str(meta.get('data_hash'))[:12]}, but the folder is now "
            f"{data_hash[:12]}; run `train split` again"
        )
    return splits
