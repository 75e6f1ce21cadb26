"""Reads train.csv in either Severstal layout into one record per (image, class) row.

Layouts: `ImageId,ClassId,EncodedPixels` (current Kaggle download) and the original 2019
`ImageId_ClassId,EncodedPixels` (`0002cc93b.jpg_1`). A row with empty EncodedPixels means the
class is absent. Row numbers are file line numbers (the header is row 1).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from edge.errors import DataError
from train.data.problems import Problems

HEADER_SPLIT = ["ImageId", "ClassId", "EncodedPixels"]
HEADER_JOINED = ["ImageId_ClassId", "EncodedPixels"]


@dataclass(frozen=True)
class MaskRow:
    """One CSV row: the Severstal class `class_id` of `image_id` has mask `rle` ('' = absent)."""

    row: int
    image_id: str
    class_id: int
    rle: str


def read_mask_rows(path: Path, problems: Problems) -> list[MaskRow]:
    """All well-formed rows of `path`; malformed or duplicate rows go to `problems`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (a Severstal folder needs train.csv)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    if header not in (HEADER_SPLIT, HEADER_JOINED):
        raise DataError(
            f"{path}: header {','.join(header) or '(empty)'} is neither "
            f"{','.join(HEADER_SPLIT)} nor {','.join(HEADER_JOINED)}"
        )
    rows, seen = [], {}
    for line, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue
        record = _parse_row(path, line, fields, header == HEADER_JOINED, problems)
        if record is None:
            continue
        key = (record.image_id, record.class_id)
        if key in seen:
            problems.add(
                f"{path} row {line}: duplicate of row {seen[key]} "
                f"(image {record.image_id}, class {record.class_id})"
            )
            continue
        seen[key] = line
        rows.append(record)
    return rows


def _parse_row(path, line, fields, joined, problems) -> MaskRow | None:
    expected = len(HEADER_JOINED) if joined else len(HEADER_SPLIT)
    if len(fields) != expected:
        problems.add(f"{path} row {line}: {len(fields)} fields, expected {expected}")
        return None
    if joined:
        image_id, sep, class_text = fields[0].strip().rpartition("_")
        if not sep:
            problems.add(f"{path} row {line}: '{fields[0]}' is not ImageId_ClassId")
            return None
    else:
        image_id, class_text = fields[0].strip(), fields[1]
    class_text = class_text.strip()
    if not image_id:
        problems.add(f"{path} row {line}: empty ImageId")
        return None
    if not class_text.isdigit():
        problems.add(f"{path} row {line}: class id '{class_text}' is not a positive integer")
        return None
    return MaskRow(line, image_id, int(class_text), fields[-1].strip())
