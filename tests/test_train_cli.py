"""`train fit/evaluate/explain` command lines: reproduction, resume, Grad-CAM and bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.inference.modelcard import ModelCard
from train import rundir
from train.cli import main
from train.data.folder import SeverstalFolder
from train.data.splits import make_splits, write_splits

# `train evaluate` runs the same code on the same tiles: numbers must agree to rounding noise.
REPRODUCTION_TOLERANCE = 1e-6


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_evaluate_reproduces_the_numbers_of_fit(trained_run, tmp_path, capsys):
    out = tmp_path / "test.json"
    code, stdout, _ = run_cli(capsys, "evaluate", "--run", str(trained_run), "--split", "test",
                              "--out", str(out), "--threads", "2")
    assert code == 0
    card = ModelCard.load(trained_run / "modelcard.json")
    document = json.loads(out.read_text())
    assert document["max_difference_to_card"] <= REPRODUCTION_TOLERANCE
    for view in ("crops", "frames"):
        ours, theirs = document["metrics"][view], card.metrics["test"][view]
        assert ours["n"] == theirs["n"] and ours["confusion"] == theirs["confusion"]
        for a, b in zip(ours["classes"], theirs["classes"], strict=True):
            assert a["f1"] == pytest.approx(b["f1"], abs=REPRODUCTION_TOLERANCE)
    assert "largest difference" in stdout


def test_explain_writes_class_panels(trained_run, tmp_path, capsys):
    from train.explain import gradcam_frame
    from train.models import load_keras_model

    card = ModelCard.load(trained_run / "modelcard.json")
    folder = SeverstalFolder.open(card.data["folder"])
    image_id = max(folder.image_ids, key=lambda i: folder.mask_pixels(i)[2])  # a big film
    png = tmp_path / "cam.png"
    code, _, _ = run_cli(capsys, "explain", "--run", str(trained_run), "--image",
                         str(folder.image_path(image_id)), "--out", str(png), "--threads", "2")
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model = load_keras_model(trained_run / "model.keras")
    image = folder.read_image(image_id)
    cam = gradcam_frame(model, image)
    assert cam.cams.shape == (3, folder.height, folder.width)
    assert 0.0 <= cam.cams.min() and cam.cams.max() <= 1.0
    tiles = np.stack([image[y : y + h, x : x + w] for x, y, w, h in cam.boxes])[..., None]
    np.testing.assert_allclose(cam.tile_probabilities, model.predict_on_batch(tiles), atol=1e-5)
    # The film class map is brighter on the film than off it.
    film = folder.masks(image_id)[2]
    assert cam.cams[2][film].mean() > cam.cams[2][~film].mean()


def test_resume_continues_from_the_last_epoch(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("tensorboard"))
    epochs = json.loads((run / rundir.STATE_FILE).read_text())["epoch"]
    code, _, err = run_cli(capsys, "fit", "--resume", "--out", str(run), "--epochs",
                           str(epochs + 1), "--steps-per-epoch", "3", "--threads", "2", "--quiet")
    assert code == 0, err
    assert json.loads((run / rundir.STATE_FILE).read_text())["epoch"] == epochs + 1
    history = (run / rundir.HISTORY_FILE).read_text().strip().splitlines()
    assert len(history) == 1 + epochs + 1  # header + every epoch, appended
    card = ModelCard.load(run / "modelcard.json")
    assert card.training["resumed_from_epoch"] == epochs and card.training["epochs"] == epochs + 1


def test_missing_data_folder(tmp_path, capsys):
    code, _, err = run_cli(capsys, "fit", "--data", str(tmp_path / "nowhere"), "--out",
                           str(tmp_path / "run"), "--arch", "tiny")
    assert_one_line_error(code, err, "train fit: error:", "nowhere")
    assert not (tmp_path / "run").exists()


def test_unknown_architecture(tiny_synth_data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "resnet9")
    assert_one_line_error(code, err, "unknown architecture 'resnet9'", "tiny")


def test_empty_split(tiny_synth_data, tmp_path, capsys):
    folder = SeverstalFolder.open(tiny_synth_data)
    splits = make_splits(folder, 0)
    splits["train"] += splits["validation"]
    splits["validation"] = []
    path = write_splits(tmp_path / "splits.json", splits, {"data_hash": folder.content_hash()})
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "tiny", "--splits", str(path))
    assert_one_line_error(code, err, "split 'validation' is empty")


def test_bad_option_values(tiny_synth_data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "tiny", "--epochs", "0")
    assert_one_line_error(code, err, "--epochs 0")
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--focal-alpha", "lots")
    assert_one_line_error(code, err, "--focal-alpha 'lots'")


def test_run_folder_must_be_new_unless_resuming(tiny_synth_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "something").write_text("x")
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out", str(run),
                           "--arch", "tiny")
    assert_one_line_error(code, err, "not empty", "--resume")
    code, _, err = run_cli(capsys, "fit", "--resume", "--out", str(tmp_path / "fresh"))
    assert_one_line_error(code, err, "nothing to resume")


def test_imagenet_weights_offline(tiny_synth_data, tmp_path, capsys, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/w.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "resnet50", "--weights", "imagenet",
                           "--threads", "2")
    assert_one_line_error(code, err, "cannot download the ImageNet weights of ResNet50")


def test_evaluate_missing_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", "--run", str(tmp_path / "none"))
    assert_one_line_error(code, err, "model card not found")
