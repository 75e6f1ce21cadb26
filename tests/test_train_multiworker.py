"""`train fit --strategy multiworker`: TF_CONFIG checks, and two real workers on loopback (CPU)
that train what one worker trains, with RUN_DIR written by the chief only."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from tests.test_train_cli import assert_one_line_error, run_cli
from train import rundir
from train.distribute import check_batch, parse_tf_config, worker_role

REPO = Path(__file__).resolve().parents[1]
# 1 epoch x 4 steps of 8 crops on the 24 images of tiny_synth_data: about 20 s for all three
# processes on 2 cores (most of it TensorFlow's start-up and tracing).
FIT_OPTIONS = ["--arch", "tiny", "--epochs", "1", "--steps-per-epoch", "4", "--batch-size", "8",
               "--threads", "1", "--quiet"]
# The two workers together see exactly the crops of one worker's batches (each takes half of
# every global batch), start from the same weights, all-reduce the gradients and synchronise
# BatchNorm, so only the order of float32 additions differs (sums over 8 crops split 4 + 4, and
# oneDNN's own ordering). Measured over 4 Adam steps: losses and accuracies agree to 5e-5,
# probabilities to 4e-4 (Adam divides each gradient by its running size, so a rounding
# difference in a near-zero gradient moves that weight by up to the learning rate). A real
# divergence, per-worker BatchNorm statistics, moved the training loss by 1e-2 on this run.
LOSS_TOLERANCE = 1e-3
SCORE_TOLERANCE = 2e-3


def cluster(n: int) -> dict:
    ports = []
    for _ in range(n):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    return {"worker": [f"127.0.0.1:{port}" for port in ports]}


def fit_process(data: Path, out: Path, log: Path, env: dict, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "train.cli", "fit", "--data", str(data), "--out", str(out),
               *FIT_OPTIONS, *extra]
    with open(log, "w") as stream:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=stream,
                                stderr=subprocess.STDOUT)


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def two_runs(tiny_synth_data, tmp_path_factory):
    """One single-worker run and one two-worker run of the same command, side by side."""
    root = tmp_path_factory.mktemp("multiworker")
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0",
            "PYTHONPATH": str(REPO)}
    worker_tmp = root / "worker-tmp"
    worker_tmp.mkdir()
    spec = cluster(2)
    processes = [fit_process(tiny_synth_data, root / "single", root / "single.log", base)]
    for index in range(2):
        env = {**base, "TMPDIR": str(worker_tmp),
               "TF_CONFIG": json.dumps({"cluster": spec, "task": {"type": "worker",
                                                                  "index": index}})}
        processes.append(fit_process(tiny_synth_data, root / "multi", root / f"w{index}.log", env,
                                     "--strategy", "multiworker"))
    for process, name in zip(processes, ("single", "w0", "w1"), strict=True):
        try:
            code = process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            pytest.fail(f"{name} did not finish:\n{(root / f'{name}.log').read_text()[-3000:]}")
        assert code == 0, (root / f"{name}.log").read_text()[-3000:]
    return root


def test_two_workers_train_what_one_worker_trains(two_runs):
    single, multi = two_runs / "single", two_runs / "multi"
    history = read_history(multi / rundir.HISTORY_FILE)
    reference = read_history(single / rundir.HISTORY_FILE)
    assert len(history) == len(reference) == 1
    assert history[0].keys() == reference[0].keys()
    for key, value in reference[0].items():
        assert abs(history[0][key] - value) <= LOSS_TOLERANCE, (key, history[0][key], value)
    cards = [json.loads((run / "modelcard.json").read_text()) for run in (single, multi)]
    thresholds = np.array(cards[0]["thresholds"])
    assert cards[1]["thresholds"] == pytest.approx(thresholds, abs=0.0101)  # one grid step
    with np.load(single / rundir.SCORES_FILE) as one, np.load(multi / rundir.SCORES_FILE) as two:
        assert one.files == two.files
        for name in (n for n in one.files if n.endswith("_scores")):
            assert np.abs(one[name] - two[name]).max() <= SCORE_TOLERANCE, name
            # every decision agrees, except for a score within the tolerance of its threshold
            near = np.abs(one[name] - thresholds) <= SCORE_TOLERANCE
            same = (one[name] >= thresholds) == (two[name] >= thresholds)
            assert same[~near].all(), name
    assert cards[1]["training"]["workers"] == 2 and cards[1]["training"]["replicas"] == 2
    assert cards[0]["training"]["workers"] == 1


def test_only_the_chief_writes(two_runs):
    chief = (two_runs / "w0.log").read_text()
    worker = (two_runs / "w1.log").read_text()
    assert "run written to" in chief and "(chief); waiting until every worker" in chief
    assert "worker done; the chief writes the run folder" in worker
    assert "run written to" not in worker
    single_files = sorted(p.name for p in (two_runs / "single").iterdir())
    assert sorted(p.name for p in (two_runs / "multi").iterdir()) == single_files
    # the non-chief's checkpoints and logs went to a temporary folder, removed at the end
    assert list((two_runs / "worker-tmp").iterdir()) == []


def run_workers(root: Path, name: str, argv: list[str], data: Path | None = None) -> None:
    """Both workers of a fresh loopback cluster run `train.cli argv`; each must exit 0."""
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0",
            "PYTHONPATH": str(REPO), "TMPDIR": str(root / "worker-tmp")}
    spec, processes = cluster(2), []
    for index in range(2):
        env = {**base, "TF_CONFIG": json.dumps({"cluster": spec,
                                                "task": {"type": "worker", "index": index}})}
        with open(root / f"{name}{index}.log", "w") as stream:
            processes.append(subprocess.Popen([sys.executable, "-m", "train.cli", *argv],
                                              cwd=REPO, env=env, stdout=stream,
                                              stderr=subprocess.STDOUT))
    for index, process in enumerate(processes):
        try:
            code = process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            code = None
        assert code == 0, (root / f"{name}{index}.log").read_text()[-3000:]


def test_two_workers_resume_a_multiworker_run(two_runs, tmp_path):
    """`--resume` without --strategy: both workers take it from the run, train the next epoch
    from the chief's checkpoint, and only the chief appends to the run folder."""
    run = tmp_path / "multi"
    shutil.copytree(two_runs / "multi", run, ignore=shutil.ignore_patterns("tensorboard"))
    (tmp_path / "worker-tmp").mkdir()
    run_workers(tmp_path, "resume", ["fit", "--resume", "--out", str(run), "--epochs", "2",
                                     "--steps-per-epoch", "4", "--threads", "1", "--quiet"])
    assert json.loads((run / rundir.STATE_FILE).read_text())["epoch"] == 2
    history = read_history(run / rundir.HISTORY_FILE)
    first = read_history(two_runs / "multi" / rundir.HISTORY_FILE)
    assert len(history) == 2 and history[0] == first[0]  # epoch 1 kept, epoch 2 appended
    card = json.loads((run / "modelcard.json").read_text())
    assert card["training"]["resumed_from_epoch"] == 1 and card["training"]["epochs"] == 2
    assert card["training"]["workers"] == 2
    assert "worker done; the chief writes the run folder" in (tmp_path / "resume1.log").read_text()
    assert list((tmp_path / "worker-tmp").iterdir()) == []


@pytest.mark.parametrize(("tf_config", "fragment"), [
    (None, "needs TF_CONFIG"),
    ("{cluster", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
    ('{"cluster": {"worker": ["a:1"]}}', 'no "task"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
     "task.index 1 is out of range"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     'cluster.worker[0] = \'a\' is not "host:port"'),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "cluster.ps: only"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task.type 'chief' is not a task type"),
])
def test_a_bad_tf_config_is_one_clear_error(tf_config, fragment):
    with pytest.raises(ConfigError) as raised:
        worker_role("multiworker", {} if tf_config is None else {"TF_CONFIG": tf_config})
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


def test_the_chief_is_the_chief_task_or_worker_0():
    workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], **workers}

    def role(spec, task_type, index):
        return parse_tf_config(json.dumps({"cluster": spec,
                                           "task": {"type": task_type, "index": index}}))

    assert role(workers, "worker", 0).is_chief and not role(workers, "worker", 1).is_chief
    assert role(with_chief, "chief", 0).is_chief and not role(with_chief, "worker", 0).is_chief
    assert role(with_chief, "worker", 1).num_workers == 3
    assert role(with_chief, "worker", 1).addresses == ("c:1", "a:1", "b:1")
    assert worker_role("auto", {"TF_CONFIG": "not read"}).is_chief
    with pytest.raises(ConfigError, match="--batch-size 15 does not split over 2 workers"):
        check_batch(role(workers, "worker", 0), 15)
    check_batch(role(workers, "worker", 0), 16, replicas=4)  # 2 workers x 2 GPUs
    with pytest.raises(ConfigError, match="--batch-size 12 does not split over 8 replicas"):
        check_batch(role(workers, "worker", 0), 12, replicas=8)  # 2 workers x 4 GPUs


def test_fit_without_tf_config_stops_before_writing(tiny_synth_data, tmp_path, capsys,
                                                    monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, _, err = run_cli(capsys, "fit", "--data", str(tiny_synth_data), "--out",
                           str(tmp_path / "run"), "--arch", "tiny", "--strategy", "multiworker")
    assert_one_line_error(code, err, "--strategy multiworker needs TF_CONFIG")
    assert not (tmp_path / "run").exists()


def test_ctrl_c_tells_every_worker_how_to_continue(tmp_path):
    from train.commands.fit import interrupted_message

    (tmp_path / rundir.STATE_FILE).write_text(json.dumps({"epoch": 3}))
    (tmp_path / rundir.CONFIG_FILE).write_text(json.dumps({"epochs": 9,
                                                           "strategy": "multiworker"}))
    assert interrupted_message(tmp_path) == (
        f"train fit: interrupted after epoch 3 of 9; resume with: train fit --resume --out "
        f"{tmp_path} on every worker, each with its TF_CONFIG")
    assert "this worker keeps nothing" in interrupted_message(tmp_path / "elsewhere", chief=False)


def test_a_worker_empties_its_fixed_scratch_folder_on_every_start(tmp_path, monkeypatch):
    """A killed worker's checkpoints are removed by its next start, not left in /tmp."""
    import tempfile

    from train.fit import worker_work_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spec = {"worker": ["a:1", "b:1", "c:1"]}

    def role(index):
        return parse_tf_config(json.dumps({"cluster": spec,
                                           "task": {"type": "worker", "index": index}}))

    first = worker_work_dir("runs/a", role(1))
    (first / "checkpoints").mkdir()
    (first / "checkpoints" / "last.keras").write_bytes(b"left by a killed worker")
    again = worker_work_dir("runs/a", role(1))
    assert again == first and list(again.iterdir()) == []
    others = {worker_work_dir("runs/a", role(2)), worker_work_dir("runs/b", role(1))}
    assert first not in others and len(others) == 2
    assert sorted(p.parent for p in others | {first}) == [tmp_path] * 3


def test_sigterm_becomes_system_exit_so_finally_blocks_run():
    import signal
    import time

    from train.cli import TERMINATED, sigterm_as_exit

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as raised, sigterm_as_exit():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            cleaned.append(True)
    assert raised.value.code == TERMINATED and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_resumed_non_chief_knows_it_is_not_the_chief(tmp_path, monkeypatch):
    """`train fit --resume` without --strategy: the role comes from the run's stored strategy."""
    from train.commands.fit import is_chief
    from train.fit import FitConfig

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 1}}))
    (tmp_path / rundir.CONFIG_FILE).write_text(json.dumps({"strategy": "multiworker"}))
    config = FitConfig(data="", out=str(tmp_path))  # --strategy not given: "auto"
    assert not is_chief(config, resume=True, given={})
    assert is_chief(config, resume=False, given={})  # a fresh run: the command line's
    assert is_chief(config, resume=True, given={"strategy": "auto"})  # given again: it wins
    assert is_chief(FitConfig(data="", out=str(tmp_path / "none")), resume=True, given={})
