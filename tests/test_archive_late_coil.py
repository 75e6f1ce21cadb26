"""Frames acquired before the first L2 message belong to the coil that message names: their images
follow the coil into its folder (moved by the archive's thread), and the old `no-coil_...` name
stays a link, so the events already sent still name files that exist.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from edge.archive import files, retention
from edge.archive.writer import ArchiveWriter, DefectCrop
from edge.cli import main as edge_main
from edge.config import ArchiveConfig, parse_config
from tests.fixtures.broker import Subscriber, wait_until
from tests.fixtures.coils import FedSource, L2Publisher, defect_frame
from tests.fixtures.edge_daemon import daemon_sections
from tests.fixtures.reliability import running_daemon

L2_TOPIC = "l2/L1/coil"
DEFECT = (40, 30, 200, 200)  # tile (0, 0) of a 4 x 2 tile frame


def test_writer_moves_a_folder_and_later_images_of_the_old_name_follow(tmp_path):
    image = np.full((256, 512), 200, np.uint8)
    with ArchiveWriter(ArchiveConfig(path=tmp_path)) as writer:
        writer.submit(image, "no-coil_X", "a.png", [DefectCrop(1, (0, 0, 10, 10))])
        writer.move_folder("no-coil_X", "K7_X")
        writer.submit(image, "no-coil_X", "b.png", [DefectCrop(2, (0, 0, 10, 10))])
        writer.submit(image, "K7_X", "c.png", [DefectCrop(3, (0, 0, 10, 10))])
        assert wait_until(lambda: writer.stats()["written"] == 3)
        assert wait_until(lambda: writer.stats()["folders_moved"] == 1)
    assert (tmp_path / "no-coil_X").is_symlink()
    assert os.readlink(tmp_path / "no-coil_X") == "K7_X"  # relative: the archive can move
    assert sorted(p.name for p in (tmp_path / "K7_X").iterdir()) == [
        "defect-000001.jpg", "defect-000002.jpg", "defect-000003.jpg"]
    # retention that empties the coil's folder also removes the link to it
    result = retention.sweep(tmp_path, 10**9, max_age_s=1.0, now=2e10)
    assert result.deleted_by_age == 3 and list(tmp_path.iterdir()) == []


def test_images_of_frames_before_the_first_l2_message_follow_the_coil(
    tmp_path, mqtt_broker, mean_model, capsys
):
    sections = daemon_sections(tmp_path, mqtt_broker, mean_model, tmp_path,
                               tracking={"source": "mqtt", "topic": L2_TOPIC},
                               archive={"whole_frame": True, "latest_frame_s": 0})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    l2 = L2Publisher(mqtt_broker, L2_TOPIC)  # no retained message: frames come first
    source = FedSource()
    try:
        with running_daemon(parse_config(sections), source=source, lossless=True) as daemon:
            assert wait_until(lambda: daemon.mqtt.state == "connected"), daemon.status_line()
            source.push(defect_frame([DEFECT]))
            source.push(defect_frame([DEFECT]))
            assert wait_until(lambda: daemon.stats.frames_processed == 2)
            l2.send({"coil_id": "LATE-1"})
            assert wait_until(lambda: daemon.tracker.last_coil_id == "LATE-1")
            source.push(defect_frame([DEFECT]))
            assert wait_until(lambda: daemon.stats.frames_processed == 3)
            assert wait_until(lambda: daemon.archive.stats()["folders_moved"] == 1)
        assert wait_until(lambda: len(subscriber.messages("/coils")) == 1)
    finally:
        l2.close()
        subscriber.close()
    events = subscriber.payloads("/defects")
    [report] = subscriber.payloads("/coils")
    assert [e["coil_id"] for e in events] == [None, None, "LATE-1"]
    assert report["coil_id"] == "LATE-1" and report["frames"]["processed"] == 3
    archive = tmp_path / "state" / "archive"
    folder = report["map"].split("/")[0]
    stamp = folder.removeprefix("LATE-1_")
    assert (archive / folder).is_dir() and not (archive / folder).is_symlink()
    assert os.readlink(archive / f"no-coil_{stamp}") == folder
    inside = {p.name for p in (archive / folder).iterdir()}
    for event in events:
        for path in [event["frame_image"]] + [d["image"] for d in event["defects"]]:
            assert path.split("/")[1] in inside  # every image is in the coil's own folder
            assert cv2.imread(str(archive / path)) is not None  # and the event's path resolves
    assert events[0]["frame_image"].startswith(f"no-coil_{stamp}/")
    assert events[2]["frame_image"].startswith(f"{folder}/")
    # the coil's export has all three frames, the early ones included
    code = edge_main(["archive", "export", "--archive", str(archive), "--coil", "LATE-1",
                      "--out", str(tmp_path / "export")])
    assert code == 0 and "exported 3 frames" in capsys.readouterr().out
    assert not list(archive.rglob(f"{files.TEMP_PREFIX}*"))
