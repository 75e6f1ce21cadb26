"""Progress lines with an ETA: the evaluation's tile count and the training's time left."""

from __future__ import annotations

import logging

import numpy as np

from train.data.folder import SeverstalFolder
from train.evaluation import EvalSettings, score_split
from train.progress import ProgressPredictor, format_duration, split_tiles


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_tile_count_is_what_the_evaluation_predicts(tiny_synth_data):
    folder = SeverstalFolder.open(tiny_synth_data)
    ids = folder.image_ids[:5]
    settings = EvalSettings(seed=0)
    progress = ProgressPredictor(lambda t: np.zeros((len(t), 3), np.float32),
                                 split_tiles(folder, len(ids), settings), "evaluating test")
    score_split(progress, folder, ids, settings)
    assert progress.done == progress.total == split_tiles(folder, len(ids), settings)


def test_progress_logs_share_and_eta_at_most_every_interval(caplog):
    clock = FakeClock()
    progress = ProgressPredictor(lambda t: t, 400, "evaluating test", interval=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="train.progress"):
        for _ in range(4):
            clock.now += 6  # 100 tiles per 6 s
            progress(np.zeros(100))
    lines = [r.getMessage() for r in caplog.records]
    # logged at 12 s (200 done: 12 s more) and not at 6, 18 (too soon) or 24 s (finished)
    assert lines == ["evaluating test: 200/400 tiles (50%), ETA 0:12"]


def test_format_duration():
    assert format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"


def test_training_eta_after_each_epoch(caplog):
    from train.callbacks import TrainingEta

    clock = FakeClock()
    eta = TrainingEta(epochs=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="train.callbacks"):
        eta.on_epoch_begin(3)  # resumed at epoch 4
        clock.now = 30
        eta.on_epoch_end(3)
        clock.now = 60
        eta.on_epoch_end(4)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["epoch 4 of 10 done; about 3:00 left for training (0:30 per epoch)",
                     "epoch 5 of 10 done; about 2:30 left for training (0:30 per epoch)"]
