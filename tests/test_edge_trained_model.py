"""End to end with the really trained tiny model: held-out synthetic frames with known labels ->
`edge replay` -> defect events on a real broker, compared with the labels and with the evaluation
code that produced the model card.

Measure (also in docs/edge.md): micro-averaged F1 of the (frame, class) decisions the events
carry against the frame labels, versus chance = the F1 of saying "present" for every pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.inference.modelcard import ModelCard
from edge.inference.runtime import load_runtime
from tests.fixtures.broker import Subscriber
from tests.fixtures.edge_daemon import (
    DaemonProcess,
    daemon_sections,
    validate_messages,
    write_config,
)
from train.data.classmap import ClassMap
from train.data.folder import SeverstalFolder
from train.data.splits import read_splits
from train.evaluation import EvalSettings, frame_scores
from train.metrics import binary_metrics, prevalence_baseline

# Far above chance: on the 27 test frames the run's frames view has micro F1 ~0.75 against a
# chance F1 of ~0.43; 0.2 above chance leaves room for a slightly different training result.
MARGIN_OVER_CHANCE = 0.2
# Decisions may differ from the evaluation only where the score is this close to the threshold
# (batch composition can change ONNX Runtime's last bits).
SCORE_TOLERANCE = 1e-4


def test_events_of_the_trained_model_match_the_labels_far_above_chance(
    tmp_path, mqtt_broker, exported_onnx, trained_run, synth_data
):
    card = ModelCard.load(Path(exported_onnx).with_name("modelcard.json"))
    folder = SeverstalFolder.open(synth_data, ClassMap.parse(card.data["class_map"]))
    test_ids = read_splits(Path(trained_run) / card.data["splits_file"])["test"]
    frames = tmp_path / "frames"
    frames.mkdir()
    for image_id in test_ids:
        (frames / image_id).symlink_to(folder.image_path(image_id))
    # the exported ONNX as it is (no build-engine gate run here): commissioning mode
    sections = daemon_sections(tmp_path, mqtt_broker, exported_onnx, frames)
    sections["model"]["allow_ungated"] = True
    config = write_config(tmp_path / "edge.toml", sections)

    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, "steel-inspect/#")
    try:
        daemon = DaemonProcess(config, "--images", str(frames), command="replay")
        try:
            assert daemon.wait(180) == 0, daemon.log
        finally:
            daemon.stop()
        events = subscriber.payloads("/defects")
        validate_messages(subscriber.messages())
    finally:
        subscriber.close()
    assert f"frames:     {len(test_ids)} processed, 0 failed" in daemon.log

    index = {image_id: i for i, image_id in enumerate(test_ids)}
    predicted = np.zeros((len(test_ids), len(card.classes)), dtype=bool)
    for event in events:
        assert event["model"]["name"] == card.name
        for defect in event["defects"]:
            predicted[index[event["frame_id"]], defect["class_id"] - 1] = True
    labels = folder.labels_of(test_ids)

    # micro F1: one binary problem over every (frame, class) pair
    f1 = binary_metrics(labels.ravel(), predicted.ravel())["f1"]
    chance = prevalence_baseline(labels.ravel())["f1"]  # "present" for every pair
    print(f"trained model through edge replay: micro F1 {f1:.3f}, chance {chance:.3f}, "
          f"{len(events)} events for {len(test_ids)} frames")
    assert f1 >= chance + MARGIN_OVER_CHANCE

    # the daemon decides exactly what the evaluation (train.evaluation, frames view) decides
    settings = EvalSettings.from_dict(card.data.get("evaluation", {"seed": 0}))
    with load_runtime("onnxruntime", exported_onnx, max_batch=8, threads=1) as runtime:
        scored = frame_scores(runtime.infer_all, folder, test_ids, settings)
    thresholds = np.asarray(card.thresholds, dtype=np.float32)
    expected = scored.scores >= thresholds
    borderline = np.abs(scored.scores - thresholds) < SCORE_TOLERANCE
    assert np.all((predicted == expected) | borderline)
