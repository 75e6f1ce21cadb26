"""Grad-CAM (Selvaraju et al. 2017) on the last convolutional block, over a whole frame.

The frame is cut into tiles with `edge.inference.tiling.tile_frame` (as the daemon does). Per tile
and
class, the gradients of the class logit with respect to the last block's feature maps (the
input of the "pool" layer) are averaged over space to weight the maps; the ReLU of the weighted
sum, upsampled to the tile, is placed into the frame (maximum where tiles overlap). All class
maps share one scale (divided by the largest value over the frame and every class), so panels
compare; the probability (max over tiles, as in the frame evaluation), the threshold and, for an
image of the run's data folder, whether its mask has the class are in each panel's title.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError
from edge.inference.tiling import tile_frame
from train.models.registry import FEATURES_POOL, OUTPUT_NAME, TILE

log = logging.getLogger(__name__)

BATCH_TILES = 16


@dataclass
class FrameCam:
    cams: np.ndarray  # float32 [C, H, W] in [0, 1]
    tile_probabilities: np.ndarray  # float32 [n_tiles, C]
    boxes: np.ndarray  # int32 [n_tiles, 4] (x, y, w, h)

    @property
    def probabilities(self) -> np.ndarray:
        """Frame probability per class: the maximum over its tiles."""
        return self.tile_probabilities.max(axis=0)


class GradCam:
    """Grad-CAM maps of every output class for batches of uint8 tiles."""

    def __init__(self, model) -> None:
        import keras  # noqa: PLC0415

        self.features = keras.Model(model.inputs, model.get_layer(FEATURES_POOL).input)
        head = model.get_layer(OUTPUT_NAME)
        self.kernel, self.bias = head.kernel, head.bias
        self.num_classes = int(model.output_shape[-1])

    def __call__(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [n, t, t, 1] -> (cams float32 [n, C, t, t] unscaled, probabilities [n, C])."""
        import tensorflow as tf  # noqa: PLC0415

        with tf.GradientTape(persistent=True) as tape:
            maps = tf.cast(self.features(tf.convert_to_tensor(tiles), training=False), tf.float32)
            tape.watch(maps)
            pooled = tf.reduce_mean(maps, axis=[1, 2])
            logits = tf.matmul(pooled, tf.cast(self.kernel, tf.float32)) + tf.cast(
                self.bias, tf.float32
            )
            per_class = [tf.reduce_sum(logits[:, c]) for c in range(self.num_classes)]
        cams = []
        for c in range(self.num_classes):
            weights = tf.reduce_mean(tape.gradient(per_class[c], maps), axis=[1, 2])
            cams.append(tf.nn.relu(tf.einsum("nhwk,nk->nhw", maps, weights)))
        del tape
        cams = tf.stack(cams, axis=1)  # [n, C, h, w]
        size = tiles.shape[1:3]
        upsampled = tf.image.resize(tf.transpose(cams, [0, 2, 3, 1]), size, method="bilinear")
        cams = tf.transpose(upsampled, [0, 3, 1, 2]).numpy()
        return cams.astype(np.float32), tf.sigmoid(logits).numpy().astype(np.float32)


def gradcam_frame(model, image: np.ndarray, stride: int | None = None) -> FrameCam:
    """Grad-CAM maps of a whole grayscale frame (uint8 H x W)."""
    tiles = tile_frame(image, TILE, stride)
    grad_cam = GradCam(model)
    batch = tiles.stack()[..., None]
    frame = np.zeros((grad_cam.num_classes, *image.shape[:2]), dtype=np.float32)
    probabilities = []
    for start in range(0, len(batch), BATCH_TILES):
        cams, probs = grad_cam(batch[start : start + BATCH_TILES])
        probabilities.append(probs)
        for cam, (x, y, w, h) in zip(cams, tiles.boxes[start : start + BATCH_TILES],
                                     strict=True):
            np.maximum(frame[:, y : y + h, x : x + w], cam, out=frame[:, y : y + h, x : x + w])
    peak = float(frame.max())  # one scale for every class, so panels compare across classes
    frame /= peak if peak > 0 else 1.0
    return FrameCam(frame, np.concatenate(probabilities), tiles.boxes)


def plot_frame_cams(image: np.ndarray, cam: FrameCam, card, out: Path, masks=None) -> None:
    """The frame, then one panel per class: the Grad-CAM map over the frame on one colour scale,
    with the ground-truth mask outlined when `masks` (bool [C, H, W]) is known."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    height, width = image.shape
    rows = len(cam.cams) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(min(16, width / 100), rows * 16 * height / width
                                               + rows * 0.4))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("frame")
    for c, ax in enumerate(axes[1:]):
        probability, threshold = cam.probabilities[c], card.thresholds[c]
        verdict = "present" if probability >= threshold else "absent"
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        heat = ax.imshow(cam.cams[c], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        truth = ""
        if masks is not None:
            truth = f"; mask: {'yes' if masks[c].any() else 'no'}"
            if masks[c].any():
                ax.contour(masks[c], levels=[0.5], colors="white", linewidths=1.0)
        ax.set_title(
            f"class {card.classes[c].id} {card.classes[c].name}: p = {probability:.2f} "
            f"(threshold {threshold:.2f}, {verdict}{truth})"
        )
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.colorbar(heat, ax=list(axes[1:]), fraction=0.02, pad=0.01, label="Grad-CAM (one scale)")
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)


def explain_image(run_dir: Path, image_path: Path, out: Path) -> FrameCam:
    """Grad-CAM panels of one image with RUN_DIR's model and card, written to `out` (PNG)."""
    from train import rundir  # noqa: PLC0415
    from train.data.images import read_gray  # noqa: PLC0415
    from train.models import load_keras_model  # noqa: PLC0415

    card = rundir.load_card(run_dir)
    model = load_keras_model(Path(run_dir) / rundir.MODEL_FILE)
    image = read_gray(Path(image_path))
    cam = gradcam_frame(model, image)
    plot_frame_cams(image, cam, card, Path(out), ground_truth(card, Path(image_path)))
    log.info("wrote %s", out)
    return cam


def ground_truth(card, image_path: Path):
    """Masks [C, H, W] of an image of the run's data folder; None for any other image."""
    from train import rundir  # noqa: PLC0415
    from train.data.classmap import ClassMap  # noqa: PLC0415
    from train.data.folder import IMAGES_DIR, SeverstalFolder  # noqa: PLC0415

    root = rundir.data_folder(card)
    if root is None or image_path.parent.resolve() != (root / IMAGES_DIR).resolve():
        return None
    try:
        folder = SeverstalFolder.open(root, ClassMap.parse(card.data["class_map"]))
        return folder.masks(image_path.name)
    except DataError as exc:  # the outline is a help; a changed folder must not stop the figure
        log.info("no ground-truth outline for %s: %s", image_path.name, exc)
        return None
