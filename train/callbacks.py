"""Keras callbacks of `train fit` (imports Keras: import lazily)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras

from train import rundir
from train.progress import format_duration

log = logging.getLogger(__name__)


class FitStateWriter(keras.callbacks.Callback):
    """After every epoch, record the finished epoch count and best val loss (for --resume)."""

    def __init__(
        self, path: Path, best_loss: float | None = None, best_epoch: int | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.best = best_loss
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("val_loss", math.inf))
        if self.best is None or loss < self.best:
            self.best, self.best_epoch = loss, epoch + 1
        state = {"epoch": epoch + 1, "best_val_loss": self.best, "best_epoch": self.best_epoch}
        rundir.write_json(self.path, state)  # --resume reads it: whole or the previous one


class EpochCSVLogger(keras.callbacks.CSVLogger):
    """history.csv counting epochs from 1, like fit_state.json and the logs ("Epoch 3/12")."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class TrainingEta(keras.callbacks.Callback):
    """After every epoch, one log line with the time the remaining epochs will take."""

    def __init__(self, epochs: int, clock=time.monotonic) -> None:
        super().__init__()
        self.epochs, self.clock = epochs, clock
        self.started, self.first_epoch = None, None

    def on_epoch_begin(self, epoch, logs=None):
        if self.started is None:
            self.started, self.first_epoch = self.clock(), epoch

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1 - self.first_epoch
        per_epoch = (self.clock() - self.started) / done
        left = self.epochs - (epoch + 1)
        if left > 0:
            log.info("epoch %d of %d done; about %s left for training (%s per epoch)", epoch + 1,
                     self.epochs, format_duration(per_epoch * left), format_duration(per_epoch))
