"""Splits: deterministic, a partition, stratified, groups never span splits, stale files caught."""

from collections import Counter

import numpy as np
import pytest

from edge.errors import DataError
from train.data import splits as sp
from train.data.folder import SeverstalFolder


@pytest.fixture(scope="module")
def folder(synth_data):
    return SeverstalFolder.open(synth_data)


def _strata(folder, ids):
    return Counter(sp.label_key(row) for row in folder.labels_of(ids))


def test_deterministic_and_seed_dependent(folder):
    first = sp.make_splits(folder, seed=3)
    assert sp.make_splits(folder, seed=3) == first
    assert sp.make_splits(folder, seed=4) != first


def test_partition_with_the_paper_proportions(folder):
    splits = sp.make_splits(folder, seed=0)
    assert list(splits) == ["train", "validation", "test"]
    all_ids = [i for ids in splits.values() for i in ids]
    assert sorted(all_ids) == folder.image_ids  # every image exactly once
    n = len(folder)
    for name, fraction in zip(splits, sp.DEFAULT_FRACTIONS, strict=True):
        # largest-remainder per stratum: off by at most about one image per stratum
        assert abs(len(splits[name]) - fraction * n) <= len(_strata(folder, folder.image_ids))


def test_stratified_by_label_combination(folder):
    splits = sp.make_splits(folder, seed=0)
    everything = _strata(folder, folder.image_ids)
    per_split = {name: _strata(folder, ids) for name, ids in splits.items()}
    for key, total in everything.items():
        if total >= 3:
            assert all(per_split[name][key] >= 1 for name in splits), (key, per_split)
        if total >= 20:
            share = per_split["train"][key] / total
            assert abs(share - sp.DEFAULT_FRACTIONS[0]) < 0.06, (key, share)


def test_tiny_data_still_fills_every_split(tiny_synth_data):
    tiny = SeverstalFolder.open(tiny_synth_data)
    splits = sp.make_splits(tiny, seed=0)
    everything = _strata(tiny, tiny.image_ids)
    for key, total in everything.items():
        counts = [_strata(tiny, ids)[key] for ids in splits.values()]
        expected_nonzero = min(total, 3)
        assert sum(c > 0 for c in counts) == expected_nonzero, (key, counts)
        assert counts[0] >= 1  # a stratum of one image goes to train


def test_groups_never_span_two_splits(folder, tmp_path):
    rng = np.random.default_rng(0)
    groups = {i: f"coil-{rng.integers(0, 40)}" for i in folder.image_ids}
    path = tmp_path / "groups.csv"
    path.write_text("ImageId,coil\n" + "".join(f"{i},{g}\n" for i, g in groups.items()))
    splits = sp.make_splits(folder, seed=1, groups=sp.read_groups(path))
    where = {}
    for name, ids in splits.items():
        for image_id in ids:
            where.setdefault(groups[image_id], set()).add(name)
    assert all(len(names) == 1 for names in where.values())
    assert sorted(i for ids in splits.values() for i in ids) == folder.image_ids
    assert all(len(ids) > 0 for ids in splits.values())
    assert len(splits["train"]) > len(splits["test"])


def test_group_file_errors(folder, tmp_path):
    path = tmp_path / "groups.csv"
    path.write_text("ImageId,coil\na.jpg,1\na.jpg,2\n")
    with pytest.raises(DataError, match="row 3: image a.jpg is listed twice"):
        sp.read_groups(path)
    with pytest.raises(DataError, match=r"240 images have no group: "):
        sp.make_splits(folder, groups={"a.jpg": "1"})


def test_write_read_and_stale_hash(folder, tmp_path):
    splits = sp.make_splits(folder, seed=0)
    path = sp.write_splits(tmp_path / "splits.json", splits, {"data_hash": folder.content_hash()})
    assert sp.read_splits(path, data_hash=folder.content_hash()) == splits
    with pytest.raises(DataError, match="made for data .* run `train split` again"):
        sp.read_splits(path, data_hash="0" * 64)
    path.write_text("{}")
    with pytest.raises(DataError, match="not a splits file"):
        sp.read_splits(path)


def test_bad_fractions(folder):
    with pytest.raises(DataError, match="must be 3 values"):
        sp.make_splits(folder, fractions=[0.5, 0.5])


def test_a_rewrite_that_fails_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    """The chief rewrites splits.json, fit_config.json and data_files.json on every start while
    other workers may read them: temp file + rename, never a half-written file."""
    import os

    from train import rundir

    splits = {"train": ["a.jpg"], "validation": ["b.jpg"], "test": ["c.jpg"]}
    path = sp.write_splits(tmp_path / "splits.json", splits, {"data_hash": "h"})
    rundir.write_json(tmp_path / rundir.CONFIG_FILE, {"epochs": 3})

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        sp.write_splits(path, {**splits, "train": ["x.jpg"]}, {"data_hash": "h"})
    with pytest.raises(OSError):
        rundir.write_json(tmp_path / rundir.CONFIG_FILE, {"epochs": 9})
    assert sp.read_splits(path, "h") == splits
    assert (tmp_path / rundir.CONFIG_FILE).read_text() == '{"epochs": 3}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.CONFIG_FILE, "splits.json"]
