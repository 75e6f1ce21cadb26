"""`edge archive export`: archived whole frames -> a Severstal-format folder that `train
check-data` accepts, with the daemon's decisions (the events' box_px) as RLE boxes.

The end-to-end test replays held-out generated frames through the daemon with the really trained
tiny model (its CAM boxes) and the archive's whole frames on, on a real mosquitto.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import cv2
import jsonschema
import numpy as np
import pytest

from edge.archive import export
from edge.archive.coils import CoilArchive
from edge.archive.files import coil_folder, frame_image_name
from edge.archive.writer import ArchiveWriter
from edge.cli import main as edge_main
from edge.config import ArchiveConfig, GeometryConfig, parse_config
from edge.errors import DataError
from edge.schemas import load_schema
from edge.sources.base import Frame
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.coils import L2Publisher
from tests.fixtures.edge_daemon import daemon_sections, write_config
from tests.fixtures.reliability import running_daemon
from train.cli import main as train_main
from train.data import rle
from train.localisation import generated_frame

L2_TOPIC = "l2/L1/coil"
HELD_OUT_SEED = 4321  # the fixture model trains on seed 7
FRAMES = 8


def union_mask(boxes, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for x, y, w, h in boxes:
        mask[y : y + h, x : x + w] = True
    return mask


def test_boxes_rle_is_the_union_of_the_boxes_in_kaggle_order():
    rng = np.random.default_rng(5)
    height, width = 64, 96
    for _ in range(50):
        boxes = []
        for _ in range(int(rng.integers(1, 6))):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            boxes.append((x, y, int(rng.integers(0, width - x + 1)),
                          int(rng.integers(0, height - y + 1))))
        text = export.boxes_rle(boxes, height)
        rle.parse_runs(text, height * width)  # sorted, disjoint, inside the image
        assert np.array_equal(rle.decode(text, height, width),
                              union_mask(boxes, height, width))
    assert export.boxes_rle([(1, 2, 1, 3)], 10) == "13 3"  # column 1, rows 2-4: pixel 1*10+2+1


def archive_frame(writer, coil: str, started: float, frame_id: str, ts: float, boxes) -> None:
    archive = CoilArchive(writer, GeometryConfig(), ["a", "b", "c"])
    image = np.full((256, 512), 40, np.uint8)
    defects = [{"defect_id": i + 1, "class_id": 2, "class_name": "b", "score": 0.9,
                "box_px": list(box), "md_m": [0, 0], "cd_mm": [0, 0], "area_mm2": 1.0}
               for i, box in enumerate(boxes)]
    archive.defect_images(Frame(frame_id, ts, image), coil, started, defects)


def test_export_needs_whole_frames_and_selects_by_coil_and_date(tmp_path, capsys):
    root = tmp_path / "archive"
    with ArchiveWriter(ArchiveConfig(path=root, whole_frame=False)) as writer:
        archive_frame(writer, "NOFRAMES", 1.7e9, "a.png", 1.7e9, [(0, 0, 10, 10)])
    with ArchiveWriter(ArchiveConfig(path=root, whole_frame=True)) as writer:
        archive_frame(writer, "K1", 1.8e9, "early.png", 1.8e9, [(10, 20, 30, 40)])
        archive_frame(writer, "K1", 1.8e9, "late.png", 1.8e9 + 7200, [(300, 0, 50, 256)])
    (root / coil_folder("K1", 1.8e9) / "frame-early.jpg").unlink()  # as retention would

    def run(*argv) -> tuple[int, str, str]:
        code = edge_main(["archive", "export", "--archive", str(root), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, _, err = run("--coil", "NOFRAMES", "--out", str(tmp_path / "x"))
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "no whole frames of coil NOFRAMES" in err and "archive.whole_frame" in err
    code, _, err = run("--coil", "ABSENT", "--out", str(tmp_path / "x"))
    assert code != 0 and "no folder of coil ABSENT" in err
    code, _, err = run("--since", "yesterday", "--out", str(tmp_path / "x"))
    assert code != 0 and "--since 'yesterday'" in err
    assert not (tmp_path / "x").exists()

    code, out, _ = run("--since", "2027-01-15T10:00Z", "--out", str(tmp_path / "since"))
    assert code == 0 and "exported 1 frames" in out and "1 left out" in out
    rows = list(csv.reader((tmp_path / "since" / "train.csv").read_text().splitlines()))
    image_id = f"{coil_folder('K1', 1.8e9)}_frame-late.jpg"
    assert rows == [["ImageId", "ClassId", "EncodedPixels"],
                    [image_id, "2", export.boxes_rle([(300, 0, 50, 256)], 256)]]
    assert (tmp_path / "since" / "train_images" / image_id).is_file()
    code, _, err = run("--since", "2027-01-15T13:00Z", "--out", str(tmp_path / "y"))
    assert code != 0 and "no whole frames of since" in err
    code, _, err = run("--coil", "K1", "--out", str(tmp_path / "since"))
    assert code != 0 and "already holds" in err


def test_coil_selects_its_own_frames_in_a_folder_it_shares_with_a_look_alike_id(tmp_path):
    root = tmp_path / "archive"
    with ArchiveWriter(ArchiveConfig(path=root, whole_frame=True)) as writer:
        archive_frame(writer, "C/1", 1.8e9, "slash.png", 1.8e9, [(0, 0, 5, 5)])
        archive_frame(writer, "C_1", 1.8e9, "under.png", 1.8e9, [(0, 0, 5, 5)])
        archive_frame(writer, None, 1.8e9, "early.png", 1.8e9, [(0, 0, 5, 5)])
    early = root / coil_folder(None, 1.8e9) / "frame-early"
    for suffix in (".jpg", ".json"):  # as the late-coil move leaves a frame acquired unnamed
        early.with_suffix(suffix).rename(root / coil_folder("C_1", 1.8e9) / f"frame-early{suffix}")
    folders = export.coil_folders(root, "C_1")
    assert folders == [root / coil_folder("C/1", 1.8e9)]  # one folder for both ids
    names = {coil: sorted(f.image.name for f in export.archived_frames(folders, coil_id=coil))
             for coil in ("C_1", "C/1")}
    assert names == {"C_1": ["frame-early.jpg", "frame-under.jpg"],
                     "C/1": ["frame-early.jpg", "frame-slash.jpg"]}


def test_export_failures_are_one_line_and_images_gone_meanwhile_are_left_out(tmp_path, capsys):
    root = tmp_path / "archive"
    with ArchiveWriter(ArchiveConfig(path=root, whole_frame=True)) as writer:
        archive_frame(writer, "K1", 1.8e9, "a.png", 1.8e9, [(10, 20, 30, 40)])
        archive_frame(writer, "K1", 1.8e9, "b.png", 1.8e9, [(0, 0, 5, 5)])
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code = edge_main(["archive", "export", "--archive", str(root), "--coil", "K1",
                      "--out", str(not_a_folder)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"--out {not_a_folder}" in err

    [folder] = export.coil_folders(root, "K1")
    (root / "no-coil_link").symlink_to(folder.name)  # a coil named while it was listed
    frames = export.archived_frames([folder, root / "no-coil_link"])
    assert len(frames) == 2
    frames[0].image.unlink()  # retention, after the listing
    out = tmp_path / "out"
    summary = export.write_folder(frames, out)
    assert summary.frames == 1 and summary.rows == 1 and len(summary.skipped) == 1
    assert "vanished" in summary.skipped[0]
    assert sorted(p.name for p in out.iterdir()) == ["train.csv", "train_images"]
    assert [p.name for p in (out / "train_images").iterdir()] == [frames[1].image_id]

    frames[1].image.unlink()
    empty = tmp_path / "empty"
    with pytest.raises(DataError, match="all 2 listed frame images vanished .*nothing written"):
        export.write_folder(frames, empty)
    assert list(empty.iterdir()) == []  # no header-only CSV that looks like an export

    unreadable = export.ArchivedFrame(frames[0].folder, tmp_path, frames[0].record)  # a folder
    failed = tmp_path / "failed"
    with pytest.raises(DataError, match=f"--out {failed}: export failed, nothing .*Is a directory"):
        export.write_folder([unreadable], failed)
    assert list(failed.iterdir()) == []  # nothing left that blocks a rerun


def test_export_of_a_replayed_run_passes_check_data_with_the_events_boxes(
    tmp_path, mqtt_broker, exported_onnx, capsys
):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(FRAMES):
        image, _ = generated_frame(HELD_OUT_SEED, index, 1600, 256, defect_free=0.0)
        cv2.imwrite(str(frames / f"g{index:03d}.png"), image)
    sections = daemon_sections(tmp_path, mqtt_broker, exported_onnx, frames,
                               tracking={"source": "mqtt", "topic": L2_TOPIC},
                               archive={"whole_frame": True, "latest_frame_s": 0})
    sections["model"]["allow_ungated"] = True
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    l2 = L2Publisher(mqtt_broker, L2_TOPIC)
    l2.send({"coil_id": "T1"})
    try:
        with running_daemon(parse_config(sections), lossless=True) as daemon:
            assert wait_until(lambda: daemon.pipeline.finished, timeout=120), \
                daemon.status_line()
        assert wait_until(lambda: len(subscriber.messages("/coils")) == 1)
    finally:
        l2.close()
        subscriber.close()
    events = subscriber.payloads("/defects")
    assert events, "the trained model found no defect in held-out frames with defects"
    config = write_config(tmp_path / "edge.toml", sections)  # archive beside the outbox
    out = tmp_path / "export"
    code = edge_main(["archive", "export", "--config", str(config), "--coil", "T1",
                      "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert f"exported {len(events)} frames" in capsys.readouterr().out

    with capsys.disabled():
        print(f"\narchive export of the replay: {len(events)} frames, "
              f"{sum(len(e['defects']) for e in events)} defects")
    assert train_main(["check-data", "--data", str(out)]) == 0
    assert "ok: the folder is usable" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "train.csv").read_text().splitlines()))
    names = sorted(p.name for p in (out / "train_images").iterdir())
    assert len(names) == len(events)
    for event in events:
        [image_id] = [n for n in names if n.endswith("_" + frame_image_name(event["frame_id"]))]
        image = cv2.imread(str(out / "train_images" / image_id), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (256, 1600)
        by_class = {}
        for defect in event["defects"]:
            by_class.setdefault(defect["class_id"], []).append(defect["box_px"])
        exported = {int(r["ClassId"]): r["EncodedPixels"] for r in rows
                    if r["ImageId"] == image_id}
        assert sorted(exported) == sorted(by_class)
        for class_id, boxes in by_class.items():
            assert np.array_equal(rle.decode(exported[class_id], 256, 1600),
                                  union_mask(boxes, 256, 1600)), (image_id, class_id)
    records = [path for path in (tmp_path / "state" / "archive").glob("*/frame-*.json")
               if not path.parent.is_symlink()]  # a coil named late keeps a link (see coils)
    assert len(records) == len(events)
    for path in records:
        record = json.loads(path.read_text())
        jsonschema.validate(record, load_schema("archive-frame"))
        assert record["coil_id"] in (None, "T1") and record["width"] == 1600


def test_since_takes_iso_dates_and_date_times_in_utc():
    six = datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert export.parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert export.parse_since("2026-12-01T06:00:00Z") == six
    assert export.parse_since("2026-12-01T07:00+01:00") == six
    assert export.parse_since("2026-12-01T06:00") == six  # naive: UTC
