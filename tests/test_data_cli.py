"""`train synth`, `train check-data` and `train split` end to end (exit codes and output)."""

import shutil

from tests.fixtures.data import write_folder
from train.cli import main
from train.data import splits as sp
from train.data.folder import SeverstalFolder


def test_synth_then_check_data_then_split(tmp_path, capsys):
    out = tmp_path / "data"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--images",
                "6",
                "--seed",
                "5",
                "--width",
                "320",
                "--defect-free",
                "0.3",
            ]
        )
        == 0
    )
    assert "images/s" in capsys.readouterr().out
    assert main(["check-data", "--data", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = SeverstalFolder.open(out).summary()
    table = {line[:26].strip(): line[26:].split() for line in printed.splitlines()}
    assert table["images"] == [str(summary["images"])]
    assert table["defect-free images"] == [str(summary["defect_free"])]
    for c in summary["classes"]:
        assert table[f"{c['id']} {c['name']}"] == [str(c["images"]), f"{c['mask_pixels']:,}"]
    assert sum(c["images"] for c in summary["classes"]) > 0
    assert "ok: the folder is usable" in printed
    splits_file = tmp_path / "splits.json"
    assert main(["split", "--data", str(out), "--out", str(splits_file), "--seed", "2"]) == 0
    splits = sp.read_splits(splits_file, SeverstalFolder.open(out).content_hash())
    assert sum(len(v) for v in splits.values()) == 6


def test_check_data_lists_every_problem_and_fails(tmp_path, capsys):
    csv_text = "ImageId,ClassId,EncodedPixels\na.jpg,1,1 2 3\nb.jpg,5,1 1\nq.jpg,1,1 1\n"
    write_folder(tmp_path, csv_text, {"a.jpg": (64, 32), "b.jpg": (64, 32), "c.jpg": (40, 32)})
    code = main(["check-data", "--data", str(tmp_path), "--class-map", "1:1,2:2,3:3,4:4"])
    captured = capsys.readouterr()
    assert code == 2
    problems = [line for line in captured.out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 5, captured.out
    assert "row 2 (image a.jpg): odd number of RLE tokens" in problems[0]
    assert "row 3 (image b.jpg): Severstal class 5 is not in the class map" in problems[1]
    assert "q.jpg" in problems[2] and "c.jpg (40x32)" in problems[3]
    assert "smaller than one 256x256 tile" in problems[4]  # what `fit` would refuse
    assert captured.err.strip().splitlines() == [
        f"train check-data: error: 5 problems in {tmp_path}; fix them before training"
    ]


def test_check_data_on_a_missing_folder(tmp_path, capsys):
    assert main(["check-data", "--data", str(tmp_path / "nope")]) == 2
    assert "train_images: folder not found" in capsys.readouterr().err


def test_split_with_groups(tiny_synth_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_synth_data, data)
    folder = SeverstalFolder.open(data)
    groups = tmp_path / "groups.csv"
    groups.write_text(
        "ImageId,coil\n" + "".join(f"{i},{n // 3}\n" for n, i in enumerate(folder.image_ids))
    )
    out = tmp_path / "splits.json"
    assert main(["split", "--data", str(data), "--out", str(out), "--groups", str(groups)]) == 0
    splits, meta = sp.read_splits_file(out)
    assert meta["groups"] == str(groups) and meta["data_hash"] == folder.content_hash()
    coil = {i: n // 3 for n, i in enumerate(folder.image_ids)}
    spans = [{coil[i] for i in ids} for ids in splits.values()]
    assert not (spans[0] & spans[1] or spans[0] & spans[2] or spans[1] & spans[2])
