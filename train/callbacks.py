"""Keras callbacks of `train fit` (imports Keras: import lazily)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras


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
        self.path.write_text(json.dumps(state) + "\n")


class EpochCSVLogger(keras.callbacks.CSVLogger):
    """history.csv counting epochs from 1, like fit_state.json and the logs ("Epoch 3/12")."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)
