"""Archived whole frames -> a Severstal-format folder (`edge archive export`).

With `archive.whole_frame` on, the writer keeps each defect frame as `frame-<id>.jpg` and, beside
it, `frame-<id>.json` (`edge.archive.coils.frame_record`): the defects the daemon decided on,
with their class ids (the model card's project ids) and `box_px`. The export copies the JPEGs as
they are to `OUT/train_images/` and writes `OUT/train.csv` (`ImageId,ClassId,EncodedPixels`)
with one row per frame and class: the union of that class's boxes as Kaggle RLE (column-major,
1-based). `train check-data` and `train fit` read the folder with the default identity class
map, so an ML engineer can review and relabel the model's own decisions and train on them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge.archive.coils import FRAME_RECORD_SCHEMA
from edge.archive.files import safe_name, write_atomic
from edge.errors import DataError

IMAGES_DIR = "train_images"  # the layout train.data.folder reads
CSV_NAME = "train.csv"
CSV_HEADER = ("ImageId", "ClassId", "EncodedPixels")
_COIL_FOLDER = re.compile(r"^(?P<coil>.+)_(?P<stamp>\d{8}T\d{6}Z)$")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ArchivedFrame:
    folder: str
    image: Path
    record: dict

    @property
    def image_id(self) -> str:
        """Unique over the archive: coil folder + frame file name."""
        return f"{self.folder}_{self.image.name}"


@dataclass
class ExportSummary:
    frames: int = 0
    rows: int = 0
    boxes_by_class: dict[int, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # frames whose image vanished meanwhile


def parse_since(text: str) -> datetime:
    """An ISO date or date-time (`2026-12-01`, `2026-12-01T06:00`, `...Z`); naive means UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"--since '{text}': not an ISO date or date-time "
                        "(e.g. 2026-12-01 or 2026-12-01T06:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def coil_folders(root: Path, coil_id: str | None = None) -> list[Path]:
    """The coil folders under the archive root (of one coil id when given), oldest first.

    Links (the old name of a coil named late, see edge.archive.coils) are not followed: their
    files are in the folder they point to.
    """
    if not root.is_dir():
        raise DataError(f"archive {root}: folder not found (archive.path, or `archive` beside "
                        "outbox.path)")
    wanted = safe_name(coil_id) if coil_id is not None else None
    found = []
    for path in root.iterdir():
        match = _COIL_FOLDER.match(path.name)
        if match is None or path.is_symlink() or not path.is_dir():
            continue
        if wanted is None or match["coil"] == wanted:
            found.append((match["stamp"], path.name, path))
    return [path for _, _, path in sorted(found)]


def archived_frames(folders: list[Path], since: datetime | None = None,
                    skipped: list[str] | None = None,
                    coil_id: str | None = None) -> list[ArchivedFrame]:
    """The whole frames with their records in `folders`, acquired at or after `since`, of
    `coil_id` when given: folders are named by a file-name-safe form of the id (`C/1` and `C_1`
    share `C_1_...`), so a record naming another coil is not that coil's; one with no coil id
    (acquired before the coil was named, moved into its folder) is the folder's.

    A record that cannot be read, or whose frame image is gone (retention), is left out with its
    reason in `skipped`. A folder listed twice (a coil named late while listing: its old name
    became a link to the new one) is read once.
    """
    skipped = skipped if skipped is not None else []
    frames = []
    seen = set()
    for listed in folders:
        folder = listed.resolve()
        if folder in seen:
            continue
        seen.add(folder)
        for record_path in sorted(folder.glob("frame-*.json")):
            record = _read_record(record_path, skipped)
            if record is None:
                continue
            image = record_path.with_suffix(".jpg")
            if not image.is_file():
                skipped.append(f"{image}: frame image missing (deleted by retention?)")
                continue
            if since is not None and _timestamp(record["ts"]) < since:
                continue
            if coil_id is not None and record.get("coil_id") not in (None, coil_id):
                continue
            frames.append(ArchivedFrame(folder.name, image, record))
    return frames


def _read_record(path: Path, skipped: list[str]) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        skipped.append(f"{path}: unreadable ({exc})")
        return None
    problem = _record_problem(record)
    if problem:
        skipped.append(f"{path}: {problem}")
        return None
    return record


def _record_problem(record) -> str | None:
    if not isinstance(record, dict) or record.get("schema") != FRAME_RECORD_SCHEMA:
        return f"not a {FRAME_RECORD_SCHEMA} record"
    try:
        _timestamp(record["ts"])
        width, height = int(record["width"]), int(record["height"])
        for defect in record["defects"]:
            x, y, w, h = (int(v) for v in defect["box_px"])
            if int(defect["class_id"]) < 1 or w < 0 or h < 0 or x < 0 or y < 0 \
                    or x + w > width or y + h > height:
                return f"defect {defect.get('defect_id')}: box {defect['box_px']} or class " \
                       f"{defect['class_id']} outside the {width}x{height} frame"
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed record ({type(exc).__name__}: {exc})"
    return None


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def boxes_rle(boxes: list[Box], height: int) -> str:
    """Kaggle RLE of the union of boxes (x, y, w, h) in an image `height` pixels high.

    Pixel (y, x) is number x * height + y + 1; each box gives one run per column it covers, and
    overlapping or touching runs are merged, so the runs are sorted and disjoint.
    """
    spans = sorted((x * height + by, x * height + by + bh)
                   for bx, by, bw, bh in boxes if bw > 0 and bh > 0
                   for x in range(bx, bx + bw))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return " ".join(f"{start + 1} {end - start}" for start, end in merged)


def csv_rows(frames: list[ArchivedFrame]) -> list[tuple[str, int, str]]:
    """(ImageId, ClassId, EncodedPixels) per frame and class with at least one box."""
    rows = []
    for frame in frames:
        by_class: dict[int, list[Box]] = {}
        for defect in frame.record["defects"]:
            box = tuple(int(v) for v in defect["box_px"])
            by_class.setdefault(int(defect["class_id"]), []).append(box)
        for class_id in sorted(by_class):
            rle = boxes_rle(by_class[class_id], int(frame.record["height"]))
            if rle:
                rows.append((frame.image_id, class_id, rle))
    return rows


def write_folder(frames: list[ArchivedFrame], out: Path) -> ExportSummary:
    """Copy the frames into OUT/train_images/ and write OUT/train.csv.

    Both are written in a hidden OUT/.partial-* folder and renamed into place at the end, so a
    failure (disk full, OUT not a folder) leaves nothing that blocks a rerun; it is a DataError
    naming the path. A frame whose image vanished since it was listed (retention) is left out
    and named in the summary's `skipped`; when every one vanished, nothing is written (DataError).
    """
    if (out / CSV_NAME).exists() or (out / IMAGES_DIR).exists():
        raise DataError(f"--out {out}: already holds {IMAGES_DIR}/ or {CSV_NAME}; "
                        "export into a new folder")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    except OSError as exc:
        raise _write_error(out, exc) from None
    try:
        summary = _write_partial(frames, partial)
        (partial / IMAGES_DIR).rename(out / IMAGES_DIR)
        try:
            (partial / CSV_NAME).rename(out / CSV_NAME)  # last: the CSV says the export is whole
        except OSError:
            shutil.rmtree(out / IMAGES_DIR, ignore_errors=True)
            raise
    except OSError as exc:
        raise _write_error(out, exc) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return summary


def _write_partial(frames: list[ArchivedFrame], partial: Path) -> ExportSummary:
    images = partial / IMAGES_DIR
    images.mkdir()
    summary = ExportSummary()
    copied = []
    for frame in frames:
        try:
            shutil.copyfile(frame.image, images / frame.image_id)
        except FileNotFoundError:
            if frame.image.exists():
                raise
            summary.skipped.append(f"{frame.image}: frame image vanished (deleted by retention?)")
            continue
        copied.append(frame)
        for defect in frame.record["defects"]:
            class_id = int(defect["class_id"])
            summary.boxes_by_class[class_id] = summary.boxes_by_class.get(class_id, 0) + 1
    if not copied:
        raise DataError(f"all {len(frames)} listed frame images vanished before they were copied "
                        "(deleted by retention?); nothing written")
    rows = csv_rows(copied)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    write_atomic(partial / CSV_NAME, text.getvalue().encode())
    summary.frames, summary.rows = len(copied), len(rows)
    return summary


def _write_error(out: Path, exc: OSError) -> DataError:
    where = exc.filename or out
    return DataError(f"--out {out}: export failed, nothing written ({where}: "
                     f"{exc.strerror or exc})")
