"""edge.archive: atomic image files, retention by size and age, a slow or full disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.archive import files, retention
from edge.archive.writer import ArchiveWriter, DefectCrop
from edge.config import ArchiveConfig
from tests.fixtures.broker import wait_until

COIL = "C123_20260101T000000Z"


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (256, 1600), dtype=np.uint8)


def config(root: Path, **overrides) -> ArchiveConfig:
    return ArchiveConfig(path=root, **overrides)


def test_crops_with_margin_and_whole_frame_are_written_and_decode(tmp_path):
    image = frame()
    with ArchiveWriter(config(tmp_path, margin_px=16, whole_frame=True)) as writer:
        paths = writer.submit(image, COIL, "000a1.jpg",
                              [DefectCrop(7, (100, 40, 50, 30)), DefectCrop(8, (1590, 250, 10, 6))])
        assert paths == {7: f"{COIL}/defect-000007.jpg", 8: f"{COIL}/defect-000008.jpg"}
        assert wait_until(lambda: writer.stats()["written"] == 3)
    crop = cv2.imread(str(tmp_path / paths[7]), cv2.IMREAD_GRAYSCALE)
    assert crop.shape == (30 + 32, 50 + 32)  # margin on each side
    assert np.abs(crop.astype(int) - image[24:86, 84:166]).mean() < 25  # JPEG of those pixels
    edge = cv2.imread(str(tmp_path / paths[8]), cv2.IMREAD_GRAYSCALE)
    assert edge.shape == (6 + 16, 10 + 16)  # clipped at the frame's corner
    whole = cv2.imread(str(tmp_path / COIL / "frame-000a1.jpg"), cv2.IMREAD_GRAYSCALE)
    assert whole.shape == image.shape
    assert not list(tmp_path.rglob(f"{files.TEMP_PREFIX}*"))


def test_write_is_atomic_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "c" / "defect-000001.jpg"

    def crash(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        files.write_atomic(target, b"x" * 1000)
    assert not target.exists() and list((tmp_path / "c").iterdir()) == []
    monkeypatch.undo()
    files.write_atomic(target, b"old")
    files.write_atomic(target, b"new")  # replaced whole
    assert target.read_bytes() == b"new" and len(list(target.parent.iterdir())) == 1


def test_slow_disk_never_blocks_submit_and_a_full_queue_drops_images_counted(tmp_path):
    release = threading.Event()

    def slow_store(path: Path, data: bytes) -> None:
        release.wait(10)
        files.write_atomic(path, data)

    writer = ArchiveWriter(config(tmp_path, queue=3), store=slow_store)
    writer.start()
    image = frame()
    started = time.perf_counter()
    results = [writer.submit(image, COIL, f"f{i}", [DefectCrop(i, (0, 0, 64, 64))])
               for i in range(1, 21)]
    longest = time.perf_counter() - started
    assert longest < 0.5, f"20 submits took {longest:.3f} s against a stalled disk"
    accepted = [r for r in results if r]
    stats = writer.stats()
    # one job in the writer's hands, three queued: the other 16 are dropped, each counted
    assert 3 <= len(accepted) <= 4
    assert stats["dropped_queue_full"] == 20 - len(accepted)
    release.set()
    assert wait_until(lambda: writer.stats()["written"] == len(accepted))
    writer.stop()
    for paths in accepted:
        assert all((tmp_path / p).is_file() for p in paths.values())


def test_disabled_archive_writes_nothing(tmp_path):
    with ArchiveWriter(config(tmp_path / "a", enabled=False)) as writer:
        assert writer.submit(frame(), COIL, "f", [DefectCrop(1, (0, 0, 9, 9))]) == {}
    assert not (tmp_path / "a").exists()


def _file(root: Path, name: str, size: int, age_s: float, now: float) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_retention_deletes_by_age_then_oldest_first_by_size(tmp_path):
    now = time.time()
    old = _file(tmp_path, "c1/defect-000001.jpg", 100, 11 * 86400, now)
    ages = {f"c2/defect-00000{i}.jpg": (10 - i) * 3600 for i in range(1, 6)}  # 1 is the oldest
    kept = {name: _file(tmp_path, name, 1000, age, now) for name, age in ages.items()}
    stray = _file(tmp_path, "c2/notes.txt", 10**6, 20 * 86400, now)
    result = retention.sweep(tmp_path, max_bytes=3000, max_age_s=10 * 86400, now=now)
    assert (result.deleted_by_age, result.deleted_by_size) == (1, 2)
    assert not old.exists() and not (tmp_path / "c1").exists()  # emptied folder removed
    assert [n for n, p in kept.items() if p.exists()] == list(ages)[2:]
    assert result.kept_bytes == 3000 and result.kept_files == 3
    assert stray.exists()  # only archive images are managed


def test_writer_sweeps_and_counts_retention(tmp_path, caplog):
    now = time.time()
    _file(tmp_path, "old/defect-000001.jpg", 100, 400 * 86400, now)
    with ArchiveWriter(config(tmp_path, max_days=365)) as writer:
        assert wait_until(lambda: writer.stats()["deleted_by_age"] == 1)
    assert "deleted 1 file(s) older than 365.0 days" in caplog.text


def test_read_only_disk_is_a_state_and_a_counter(tmp_path, caplog):
    def read_only(path: Path, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    writer = ArchiveWriter(config(tmp_path), store=read_only)
    with writer:
        for i in range(3):
            writer.submit(frame(), COIL, f"f{i}", [DefectCrop(i, (0, 0, 8, 8))])
        assert wait_until(lambda: writer.stats()["write_errors"] == 3)
        assert writer.state == files.READ_ONLY and writer.stats()["written"] == 0
    assert caplog.text.count("disk read_only") == 1  # said once, not per image


def _mount_tmpfs(target: Path, size: str) -> str | None:
    """Mount a small tmpfs at target; None, or the reason it cannot be done here."""
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"cannot mount a tmpfs: {done.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path):
    target = tmp_path / "disk"
    target.mkdir()
    reason = _mount_tmpfs(target, "256k")
    if reason:
        pytest.skip(f"full-disk test needs mount rights ({reason})")
    yield target
    subprocess.run(["umount", str(target)], check=False)


def test_full_disk_is_a_state_and_recovers_when_space_returns(small_disk):
    writer = ArchiveWriter(config(small_disk, jpeg_quality=100))
    noisy = frame(3)
    with writer:
        for i in range(40):  # ~40 KB crops on a 256 KB disk
            writer.submit(noisy, COIL, f"f{i}", [DefectCrop(i, (0, 0, 256, 256))])
        assert wait_until(lambda: writer.stats()["queued"] == 0 and writer.state == files.FULL)
        stats = writer.stats()
        assert stats["write_errors"] >= 1 and stats["written"] >= 1
        assert not list(small_disk.rglob(f"{files.TEMP_PREFIX}*"))  # no half-written files
        for path in (small_disk / COIL).iterdir():
            path.unlink()
        writer.submit(noisy, COIL, "again", [DefectCrop(99, (0, 0, 32, 32))])
        assert wait_until(lambda: writer.state == files.OK)


def test_coil_folder_names_are_safe_and_unique_per_pass():
    assert files.coil_folder("A/B 7", 0.0) == "A_B_7_19700101T000000Z"
    assert files.coil_folder(None, 86400.0) == "no-coil_19700102T000000Z"
    assert files.coil_folder("..", 0.0).startswith("__")


def test_config_rejects_unknown_keys_and_bad_bounds(tmp_path):
    from pydantic import ValidationError

    assert ArchiveConfig().path is None  # the daemon puts it beside the outbox
    with pytest.raises(ValidationError, match="max_gb"):
        ArchiveConfig(max_gb=0)
    with pytest.raises(ValidationError, match="extra"):
        ArchiveConfig(colour="red")
