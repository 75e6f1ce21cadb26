"""Ctrl-C during `train fit`, plain logs off a terminal, one epoch convention, curve markers."""

from __future__ import annotations

import csv
import json

import pytest

from tests.test_train_cli import run_cli
from train import rundir
from train.commands.fit import given_options
from train.report import best_epoch, lr_drop_epochs, read_history


def _fit(capsys, data, out):
    return run_cli(capsys, "fit", "--data", str(data), "--out", str(out), "--arch", "tiny",
                   "--threads", "2")


def test_ctrl_c_after_an_epoch_prints_the_resume_command(tiny_synth_data, tmp_path, capsys,
                                                         monkeypatch):
    import train.fit

    def two_epochs_then_ctrl_c(config, state, folder, splits, role):
        (tmp_path / "run" / rundir.STATE_FILE).write_text(json.dumps({"epoch": 2}))
        raise KeyboardInterrupt

    monkeypatch.setattr(train.fit, "train", two_epochs_then_ctrl_c)
    code, _, err = _fit(capsys, tiny_synth_data, tmp_path / "run")
    assert code == 130
    lines = err.strip().splitlines()
    assert lines[-1] == (f"train fit: interrupted after epoch 2 of 12; resume with: "
                         f"train fit --resume --out {tmp_path / 'run'}")
    assert err.count("interrupted") == 1 and "Traceback" not in err
    assert (tmp_path / "run" / rundir.CONFIG_FILE).is_file()  # kept for --resume


def test_ctrl_c_in_the_first_epoch_keeps_nothing(tiny_synth_data, tmp_path, capsys, monkeypatch):
    import train.fit

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.fit, "train", ctrl_c)
    code, _, err = _fit(capsys, tiny_synth_data, tmp_path / "run")
    assert code == 130 and "run the same command again" in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("tty", "quiet", "verbose"), [(True, False, 1), (False, False, 2),
                                                        (True, True, 2)])
def test_progress_bars_only_on_a_terminal(monkeypatch, tty, quiet, verbose):
    import argparse
    import sys

    from train.commands.fit import OPTIONS

    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    args = argparse.Namespace(**dict.fromkeys(OPTIONS), mixed_precision=None, quiet=quiet)
    assert given_options(args)["verbose"] == verbose


def test_history_counts_epochs_from_one_like_the_state(trained_run):
    history = read_history(trained_run / rundir.HISTORY_FILE)
    state = json.loads((trained_run / rundir.STATE_FILE).read_text())
    assert history["epoch"].tolist() == list(range(1, state["epoch"] + 1))
    assert best_epoch(history) == state["best_epoch"]


def test_curve_markers_find_the_best_epoch_and_the_learning_rate_drops(tmp_path):
    path = tmp_path / "history.csv"
    rows = [(1, 0.5, 1e-3), (2, 0.3, 1e-3), (3, 0.4, 1e-3), (4, 0.35, 5e-4), (5, 0.36, 2.5e-4)]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", "val_loss", "learning_rate"])
        writer.writerows(rows)
    history = read_history(path)
    assert best_epoch(history) == 2
    assert lr_drop_epochs(history) == [4, 5]


def test_ctrl_c_of_a_real_fit_leaves_no_tensorflow_finaliser_warning(tiny_synth_data, tmp_path):
    """SIGINT to a real `train fit` process after its first epoch: exit 130, the resume line
    last, and none of TensorFlow's "Error occurred when finalizing GeneratorDataset iterator"
    (its C++ warnings are shown: TF_CPP_MIN_LOG_LEVEL=0, as for a user)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "run"
    command = [sys.executable, "-m", "train.cli", "fit", "--data", str(tiny_synth_data),
               "--out", str(out), "--arch", "tiny", "--epochs", "50", "--steps-per-epoch", "10",
               "--batch-size", "8", "--patience", "50", "--threads", "1", "--quiet"]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": str(repo)}
    process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / rundir.STATE_FILE).is_file() and process.poll() is None:
        assert time.monotonic() < deadline, "no epoch finished in 120 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "resume with: train fit --resume --out" in err.strip().splitlines()[-1]
    assert "finaliz" not in err.lower() and "Traceback" not in err, err[-2000:]


def test_sigterm_in_the_first_epoch_keeps_nothing_and_exits_143(tiny_synth_data, tmp_path,
                                                                capsys, monkeypatch):
    import os
    import signal
    import time

    import train.fit

    def sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(train.fit, "train", sigterm)
    code, _, err = _fit(capsys, tiny_synth_data, tmp_path / "run")
    assert code == 143 and "run the same command again" in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
