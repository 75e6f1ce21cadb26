"""Child process of `convert export-onnx`: the only code of the export that imports TensorFlow.

    python -m convert.export_worker MODEL.keras SAVED_MODEL_DIR TILES.npy KERAS_PROBS.npy

Loads the Keras model, writes its probabilities on the parity tiles, and exports a SavedModel
with the serving signature uint8 "image" [None, H, W, C]. Running it (and tf2onnx after it) in
child processes keeps the parent free of TensorFlow and the peak memory at the largest child.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

PREDICT_BATCH = 8
SIGNATURE_INPUT = "image"  # renamed to the card's input name after conversion


def keras_probabilities(model, tiles: np.ndarray) -> np.ndarray:
    parts = [
        np.asarray(model.predict_on_batch(tiles[i : i + PREDICT_BATCH]), dtype=np.float32)
        for i in range(0, len(tiles), PREDICT_BATCH)
    ]
    return np.concatenate(parts)


def export_saved_model(model, out_dir: Path) -> None:
    import tensorflow as tf  # noqa: PLC0415

    shape = [None, *model.inputs[0].shape[1:]]
    signature = [tf.TensorSpec(shape, tf.uint8, name=SIGNATURE_INPUT)]
    model.export(str(out_dir), format="tf_saved_model", input_signature=signature, verbose=False)


def main(argv: list[str]) -> int:
    keras_path, saved_dir, tiles_path, probs_path = (Path(a) for a in argv)
    from train.models import load_keras_model  # noqa: PLC0415 (imports Keras)

    model = load_keras_model(keras_path)
    tiles = np.load(tiles_path)
    np.save(probs_path, keras_probabilities(model, tiles))
    export_saved_model(model, saved_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
