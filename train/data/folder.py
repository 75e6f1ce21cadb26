"""A Severstal-format data folder: `DIR/train_images/*.jpg` plus `DIR/train.csv` (RLE masks).

Every image in train_images/ is part of the data set; images without CSV rows are defect-free.
All images share one size (Kaggle: 1600x256): every header is read at `open()` and the size of
the majority is the expected one, so one odd file is named instead of failing after training.
`open()` raises DataError on the first problem; `check-data` passes a non-strict `Problems` to
collect them all.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from edge.errors import DataError
from edge.imageio import IMAGE_SUFFIXES
from train.data import headers, images, rle
from train.data.classmap import DROPPED, ClassMap
from train.data.csvfile import MaskRow, read_mask_rows
from train.data.problems import Problems, name_some

log = logging.getLogger(__name__)

IMAGES_DIR = "train_images"
CSV_NAME = "train.csv"

Runs = tuple[np.ndarray, np.ndarray]


class SeverstalFolder:
    """Image ids, image-level labels and masks of one Severstal-format folder."""

    def __init__(self, root: Path, class_map: ClassMap, image_ids: list[str], size, runs):
        self.root = root
        self.class_map = class_map
        self.image_ids = image_ids
        self.width, self.height = size
        self._runs: dict[str, list[list[Runs]]] = runs
        self._index = {image_id: i for i, image_id in enumerate(image_ids)}
        self._content_hash: str | None = None
        self.dropped: dict[int, dict] = {}  # Severstal id -> images, mask pixels the map drops
        self.labels = np.zeros((len(image_ids), len(self.class_ids)), dtype=bool)
        for image_id, per_class in runs.items():
            self.labels[self._index[image_id]] = [bool(r) for r in per_class]

    @classmethod
    def open(
        cls,
        path,
        class_map: ClassMap | None = None,
        check_images: bool = False,
        width: int | None = None,
        height: int | None = None,
        problems: Problems | None = None,
    ) -> SeverstalFolder:
        """Read and validate the folder; `check_images` decodes every image (slow, thorough)."""
        root = Path(path)
        problems = problems if problems is not None else Problems(strict=True)
        image_dir = root / IMAGES_DIR
        if not image_dir.is_dir():
            raise DataError(f"{image_dir}: folder not found (a Severstal folder has {IMAGES_DIR}/)")
        image_ids = images.list_images(image_dir)
        if not image_ids:
            raise DataError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        rows = read_mask_rows(root / CSV_NAME, problems)
        if class_map is None:
            class_map = ClassMap.identity(r.class_id for r in rows)
            warn_if_kaggle_classes(rows)
        sizes = _read_sizes(image_dir, image_ids, problems)
        size = _expected_size(sizes, width, height)
        runs, dropped = _collect_runs(root / CSV_NAME, rows, class_map, size, problems)
        _check_listed_images(image_dir, rows, runs, set(image_ids), problems)
        _check_sizes(image_dir, sizes, size, problems)
        if check_images:
            _check_all_images(image_dir, [i for i in image_ids if i in sizes], problems)
        folder = cls(root, class_map, image_ids, size, runs)
        folder.dropped = dropped
        log.debug("opened %s: %d images, classes %s", root, len(image_ids), class_map)
        return folder

    @property
    def class_ids(self) -> list[int]:
        """Project class ids 1..C; column c of `labels` and channel c of `masks` is id c + 1."""
        return self.class_map.project_ids

    @property
    def class_names(self) -> list[str]:
        return self.class_map.names()

    def image_path(self, image_id: str) -> Path:
        self._position(image_id)
        return self.root / IMAGES_DIR / image_id

    def read_image(self, image_id: str) -> np.ndarray:
        """uint8 H x W grayscale; DataError naming the file if unreadable, truncated or resized."""
        return images.read_gray(self.image_path(image_id), (self.width, self.height))

    def masks(self, image_id: str) -> np.ndarray:
        """bool [C, H, W]: channel c is the union of the CSV rows mapped to project class c + 1."""
        self._position(image_id)
        out = np.zeros((len(self.class_ids), self.height, self.width), dtype=bool)
        for c, class_runs in enumerate(self._runs.get(image_id, ())):
            for starts, lengths in class_runs:
                out[c] |= rle.runs_to_mask(starts, lengths, self.height, self.width)
        return out

    def labels_of(self, image_ids) -> np.ndarray:
        """bool [n, C] image-level labels of the given ids, in their order."""
        return self.labels[[self._position(i) for i in image_ids]]

    def mask_pixels(self, image_id: str) -> np.ndarray:
        """int64 [C]: mask pixels per project class of one image (union of its rows)."""
        counts = np.zeros(len(self.class_ids), dtype=np.int64)
        for c, class_runs in enumerate(self._runs.get(image_id, ())):
            if len(class_runs) == 1:
                counts[c] = int(class_runs[0][1].sum())
            elif class_runs:
                counts[c] = int(self.masks(image_id)[c].sum())
        return counts

    def content_hash(self) -> str:
        """sha256 over train.csv and the sorted image names and byte sizes (no image decoding).

        Computed once per opened folder, like the listing and rows taken at `open()`, so the
        splits file and the model card of one run record the same hash.
        """
        if self._content_hash is None:
            digest = hashlib.sha256((self.root / CSV_NAME).read_bytes())
            for image_id, size in self.image_bytes().items():
                digest.update(f"\n{image_id}\t{size}".encode())
            self._content_hash = digest.hexdigest()
        return self._content_hash

    def image_bytes(self) -> dict[str, int]:
        """Byte size of every image file, by image id (what the content hash covers)."""
        return {i: (self.root / IMAGES_DIR / i).stat().st_size for i in self.image_ids}

    def file_listing(self) -> dict:
        """train.csv's sha256 and every image's byte size: names what changed when the hash does."""
        csv_hash = hashlib.sha256((self.root / CSV_NAME).read_bytes()).hexdigest()
        return {CSV_NAME: csv_hash, IMAGES_DIR: self.image_bytes()}

    def summary(self) -> dict:
        """Images, defect-free images, and per class: images and mask pixels."""
        pixels = np.zeros(len(self.class_ids), dtype=np.int64)
        for image_id in self._runs:
            pixels += self.mask_pixels(image_id)
        per_class = self.labels.sum(axis=0)
        return {
            "images": len(self.image_ids),
            "size": [self.width, self.height],
            "defect_free": int((~self.labels.any(axis=1)).sum()),
            "class_map": self.class_map.to_text(),
            "dropped": [{"severstal_id": k, **v} for k, v in self.dropped.items()],
            "classes": [
                {"id": cid, "name": name, "images": int(n), "mask_pixels": int(p)}
                for cid, name, n, p in zip(
                    self.class_ids, self.class_names, per_class, pixels, strict=True
                )
            ],
        }

    def _position(self, image_id: str) -> int:
        try:
            return self._index[image_id]
        except KeyError:
            raise DataError(f"image {image_id} is not in {self.root / IMAGES_DIR}") from None

    def __len__(self) -> int:
        return len(self.image_ids)

    def __repr__(self) -> str:
        return f"SeverstalFolder({str(self.root)!r}, {len(self)} images, map {self.class_map})"


KAGGLE_CLASS_IDS = {1, 2, 3, 4}
PAPER_CLASS_MAP = "1:1,2:0,3:2,4:3"


def warn_if_kaggle_classes(rows: list[MaskRow]) -> None:
    """Kaggle's classes 1-4 read without a map train 4 classes, not the paper's 3; a class 4
    (the paper has none) among ids 1-4 is the sign."""
    ids = {r.class_id for r in rows}
    if 4 in ids and ids <= KAGGLE_CLASS_IDS:
        log.warning(
            "the data has Severstal classes 1-4 (the Kaggle layout) and no --class-map: "
            "training 4 classes as they are; the paper's classes need --class-map %s",
            PAPER_CLASS_MAP,
        )


def _read_sizes(image_dir: Path, image_ids: list[str], problems: Problems) -> dict:
    """(width, height) per readable image, from its header; unreadable ones are problems."""
    sizes = {}
    for image_id in image_ids:
        try:
            sizes[image_id] = headers.header_size(image_dir / image_id)
        except DataError as exc:
            problems.add(str(exc))
    if not sizes:
        raise DataError(f"{image_dir}: no readable image")
    return sizes


def _expected_size(sizes: dict, width, height) -> tuple[int, int]:
    majority = headers.majority_size(sizes)
    return (int(width) if width else majority[0], int(height) if height else majority[1])


def _collect_runs(csv_path, rows: list[MaskRow], class_map, size, problems):
    """(runs per image and project class, what the map drops per Severstal id).

    Images with no present class are left out of the runs. Rows of a class the map does not
    name give one problem per class (the first row, and how many more), not one per row.
    """
    n_pixels = size[0] * size[1]
    n_classes = class_map.num_classes
    runs: dict[str, list[list[Runs]]] = {}
    dropped: dict[int, dict] = {}
    unmapped: dict[int, list[MaskRow]] = {}
    for row in rows:
        if row.class_id not in class_map.mapping:
            unmapped.setdefault(row.class_id, []).append(row)
            continue
        try:
            parsed = rle.parse_runs(row.rle, n_pixels)
        except DataError as exc:
            problems.add(f"{csv_path} row {row.row} (image {row.image_id}): {exc}")
            continue
        project_id = class_map.to_project(row.class_id)
        if not len(parsed[0]):
            continue
        if project_id == DROPPED:
            counts = dropped.setdefault(row.class_id, {"images": set(), "mask_pixels": 0})
            counts["images"].add(row.image_id)
            counts["mask_pixels"] += int(parsed[1].sum())
            continue
        per_class = runs.setdefault(row.image_id, [[] for _ in range(n_classes)])
        per_class[project_id - 1].append(parsed)
    for class_id, class_rows in sorted(unmapped.items()):
        first = class_rows[0]
        more = f" (and {len(class_rows) - 1} more rows of class {class_id})" if len(
            class_rows) > 1 else ""
        problems.add(
            f"{csv_path} row {first.row} (image {first.image_id}): Severstal class {class_id} "
            f"is not in the class map {class_map.to_text()}{more}"
        )
    summary = {k: {"images": len(v["images"]), "mask_pixels": v["mask_pixels"]}
               for k, v in sorted(dropped.items())}
    return runs, summary


def _check_listed_images(image_dir: Path, rows, runs: dict, on_disk: set, problems) -> None:
    missing = sorted({row.image_id for row in rows} - on_disk)
    if missing:
        problems.add(
            f"{len(missing)} images named in {CSV_NAME} are missing from {image_dir}: "
            f"{name_some(missing)}"
        )
        for image_id in missing:
            runs.pop(image_id, None)


def _check_sizes(image_dir: Path, sizes: dict, size, problems: Problems) -> None:
    wrong_size = [f"{i} ({w}x{h})" for i, (w, h) in sizes.items() if (w, h) != tuple(size)]
    if wrong_size:
        problems.add(
            f"{len(wrong_size)} images in {image_dir} have the wrong size "
            f"(expected {size[0]}x{size[1]}): {name_some(wrong_size)}"
        )


def _check_all_images(image_dir: Path, image_ids: list[str], problems: Problems) -> None:
    for image_id in image_ids:
        try:
            images.read_gray(image_dir / image_id)
        except DataError as exc:
            problems.add(str(exc))
