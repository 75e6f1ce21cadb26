"""Folders and files that bite: checks before training, safe outputs, clean failed starts."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from edge.errors import DataError
from edge.inference.modelcard import ModelCard
from tests.fixtures.data import write_folder
from tests.test_train_cli import assert_one_line_error, run_cli
from train import rundir
from train.data.folder import SeverstalFolder
from train.data.headers import header_size
from train.data.synth import encode_jpeg

KAGGLE_CSV = "ImageId,ClassId,EncodedPixels\na.jpg,1,1 10\nb.jpg,4,33 64\nb.jpg,2,1000 3\n"
TILE_IMAGES = {"a.jpg": (512, 256), "b.jpg": (512, 256), "c.jpg": (512, 256)}


def test_header_size_matches_the_decoded_size(tmp_path):
    import numpy as np

    path = tmp_path / "x.jpg"
    path.write_bytes(encode_jpeg(np.zeros((37, 91), np.uint8)))
    assert header_size(path) == (91, 37)


def test_the_expected_size_is_the_majority_not_the_first_file(tmp_path):
    images = {"a.jpg": (300, 256), **{f"{n}.jpg": (512, 256) for n in "bcd"}}
    with pytest.raises(DataError) as caught:
        SeverstalFolder.open(write_folder(tmp_path, KAGGLE_CSV, images))
    assert "1 images" in str(caught.value) and "expected 512x256" in str(caught.value)
    assert "a.jpg (300x256)" in str(caught.value)


def test_wrong_sized_image_stops_fit_before_anything_is_written(tmp_path, capsys):
    images = {**TILE_IMAGES, "d.jpg": (512, 250)}
    data = write_folder(tmp_path / "data", KAGGLE_CSV, images)
    code, _, err = run_cli(capsys, "fit", "--data", str(data), "--out", str(tmp_path / "run"),
                           "--arch", "tiny")
    assert_one_line_error(code, err, "d.jpg (512x250)", "expected 512x256")
    assert not (tmp_path / "run").exists()


def test_kaggle_classes_without_a_map_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        SeverstalFolder.open(write_folder(tmp_path, KAGGLE_CSV, TILE_IMAGES))
    assert any("--class-map 1:1,2:0,3:2,4:3" in r.getMessage() for r in caplog.records)


def test_fit_refuses_a_splits_file_made_under_another_class_map(tiny_synth_data, tmp_path,
                                                                capsys):
    splits = tmp_path / "splits.json"
    assert run_cli(capsys, "split", "--data", str(tiny_synth_data), "--out", str(splits),
                   "--class-map", "1:1,2:0,3:2")[0] == 0
    assert json.loads(splits.read_text())["meta"]["class_map"] == "1:1,2:0,3:2"
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "tiny", "--splits", str(splits))
    assert_one_line_error(code, err, "made with class map 1:1,2:0,3:2", "--class-map 1:1,2:0,3:2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--focal-alpha", "1.5"], "--focal-alpha 1.5 is out of range"),
        (["--class-map", "1:0,2:0,3:0"], "drops every class"),
    ],
)
def test_bad_start_options_write_nothing(tiny_synth_data, tmp_path, capsys, options, fragment):
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "tiny", *options)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "run").exists()


def test_a_start_that_fails_in_model_building_leaves_the_folder_reusable(tiny_synth_data,
                                                                         tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()  # an empty folder given on purpose stays, empty
    bad = tmp_path / "not-a-checkpoint.keras"
    bad.write_bytes(b"no model here")
    command = ["fit", "--data", str(tiny_synth_data), "--out", str(run), "--arch", "tiny",
               "--threads", "2"]
    code, _, err = run_cli(capsys, *command, "--weights", str(bad))
    assert_one_line_error(code, err, "not-a-checkpoint.keras")
    assert run.is_dir() and not any(run.iterdir())
    code, _, err = run_cli(capsys, *command, "--weights", str(tmp_path / "missing.keras"))
    assert_one_line_error(code, err, "missing.keras")  # the same command is not "not empty"


def test_check_data_refuses_what_fit_refuses(tmp_path, capsys):
    small = write_folder(tmp_path / "small", KAGGLE_CSV, {"a.jpg": (200, 100), "b.jpg": (200, 100)})
    code, out, _ = run_cli(capsys, "check-data", "--data", str(small))
    assert code == 2 and "smaller than one 256x256 tile" in out
    data = write_folder(tmp_path / "data", KAGGLE_CSV, TILE_IMAGES)
    code, out, _ = run_cli(capsys, "check-data", "--data", str(data), "--class-map",
                           "1:0,2:0,3:0,4:0")
    assert code == 2 and "drops every class" in out


def test_check_data_counts_what_the_map_drops(tmp_path, capsys):
    data = write_folder(tmp_path, KAGGLE_CSV, TILE_IMAGES)
    code, out, _ = run_cli(capsys, "check-data", "--data", str(data), "--class-map",
                           "1:1,2:0,3:2,4:3")
    assert code == 0, out
    assert "drops Severstal class 2: 1 images, 3 mask pixels" in out


def test_an_incomplete_map_gives_one_problem_per_class_not_per_row(tmp_path, capsys):
    rows = "".join(f"i{n}.jpg,4,1 5\n" for n in range(30))
    images = {f"i{n}.jpg": (512, 256) for n in range(30)}
    data = write_folder(tmp_path, "ImageId,ClassId,EncodedPixels\n" + rows, images)
    code, out, _ = run_cli(capsys, "check-data", "--data", str(data), "--class-map", "1:1,2:2")
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert code == 2 and len(problems) == 1, out
    assert "Severstal class 4 is not in the class map" in problems[0]
    assert "and 29 more rows of class 4" in problems[0]


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("tensorboard", "checkpoints"))
    return run


def test_explain_writes_into_the_run_folder_not_the_data(run_copy, capsys):
    card = ModelCard.load(run_copy / "modelcard.json")
    folder = SeverstalFolder.open(card.data["folder"])
    image = folder.image_path(folder.image_ids[0])
    code, out, err = run_cli(capsys, "explain", "--run", str(run_copy), "--image", str(image),
                             "--threads", "2")
    assert code == 0, err
    png = run_copy / rundir.EXPLAIN_DIR / f"{image.stem}-gradcam.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in out
    assert SeverstalFolder.open(card.data["folder"]).content_hash() == card.data["sha256"]


def test_data_changed_names_the_files(run_copy, tmp_path):
    card = ModelCard.load(run_copy / "modelcard.json")
    data = tmp_path / "data"
    shutil.copytree(card.data["folder"], data)
    images = data / "train_images"
    first = sorted(images.iterdir())[0]
    shutil.copy(first, images / "zz-extra.jpg")
    first.write_bytes(first.read_bytes() + b"\0")
    with pytest.raises(DataError) as caught:
        rundir.open_run_data(card, run_copy, data)
    message = str(caught.value)
    assert "data changed since training" in message
    assert "added zz-extra.jpg" in message and f"size changed {first.name}" in message
    assert "train.csv" not in message


def test_explain_outlines_the_mask_of_images_of_the_run_data(run_copy, tmp_path):
    from train.explain import ground_truth

    card = ModelCard.load(run_copy / "modelcard.json")
    folder = SeverstalFolder.open(card.data["folder"])
    image_id = next(i for i in folder.image_ids if folder.labels_of([i]).any())
    masks = ground_truth(card, folder.image_path(image_id))
    assert masks is not None and (masks == folder.masks(image_id)).all()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(folder.image_path(image_id), elsewhere / image_id)
    assert ground_truth(card, elsewhere / image_id) is None
