"""`model.fit` under MultiWorkerMirroredStrategy: two local worker processes.

keras-team/keras#20585: Keras 3.15's `fit` fails on two workers; the toolkit's
fix (`kt.distribute.strategy()` installs it) makes it train. One module-scoped
set of runs, all started by `tests/distribute/_cluster.py` on 127.0.0.1 with
free ports, each process killed after a time bound or when a peer fails:

- A: two workers, 4 epochs, with the toolkit's SGD (momentum schedule) and
  callbacks (snapshots, warmup, plateau decay, SWA, diagnostics) and
  `BackupAndRestore`; global batch 64 (32 per replica);
  then one epoch of `kt.models.Distiller` from that model into a smaller
  student, a NaN in one example healed by `kt.callbacks.SelfHealing`;
- S: one process, default strategy, the same model, data and global batch;
- K: the same two-worker job, worker 1 SIGKILLed after batch 3 of epoch 2
  (the other is then stopped, as a cluster manager would), then restarted.

Tolerance for A vs S: the cluster averages two per-replica mean gradients
(over 32 examples each) by an all-reduce, S takes one mean over 64 examples;
the sums are the same numbers added in another order, a float32 rounding
difference (~1e-7 relative) per step, over 32 steps of a small MLP with
learning rates <= 0.1: `rtol=1e-5, atol=1e-6` bounds it with margin, and a
real error (a wrong gradient scale, one worker's shard only, a lost step)
moves the weights by orders of magnitude more. Workers against each other
and a resumed run against an uninterrupted one take the same operations in
the same order, so they must agree exactly.
"""

import json
import os
import re
import sys
import threading

import numpy as np
import pytest

from tests.conftest import requires_tensorflow
from tests.distribute._cluster import free_ports, run_cluster, run_commands, run_single, tf_config

pytestmark = [requires_tensorflow, pytest.mark.slow]

KILL = (2, 3, 1)  # epoch, batch, worker


def _load(root, name):
    with open(os.path.join(root, f"out-{name}.json")) as f:
        info = json.load(f)
    for key, prefix in (("weights", "out"), ("student", "student")):
        with np.load(os.path.join(root, f"{prefix}-{name}.npz")) as data:
            info[key] = [data[f"arr_{i}"] for i in range(len(data.files))]
    return info


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    roots = {k: str(tmp_path_factory.mktemp(k)) for k in ("cluster", "single", "killed")}
    codes = {}
    jobs = {
        "cluster": lambda: run_cluster(roots["cluster"]),
        "single": lambda: run_single(roots["single"]),
        "killed": lambda: run_cluster(roots["killed"], kill_at=KILL),
    }

    def run(name):
        try:
            codes[name] = jobs[name]()
        except Exception as error:  # noqa: BLE001 - reported below
            codes[name] = ([None], repr(error))

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("cluster", "single"):
        assert codes[name][0] == [0] * len(codes[name][0]), codes[name][1]
    assert -9 in codes["killed"][0], codes["killed"]
    codes["resumed"] = run_cluster(roots["killed"])
    assert codes["resumed"][0] == [0, 0], codes["resumed"][1]
    return dict(
        roots=roots,
        workers=[_load(roots["cluster"], f"worker{i}") for i in range(2)],
        single=_load(roots["single"], "single"),
        resumed=[_load(roots["killed"], f"worker{i}") for i in range(2)],
    )


def test_workers_end_with_identical_weights(runs):
    w0, w1 = runs["workers"]
    assert w0["replicas"] == w1["replicas"] == 2
    assert w0["iterations"] == w1["iterations"] == 4 * 8
    for a, b in zip(w0["weights"], w1["weights"]):
        np.testing.assert_array_equal(a, b)


def test_cluster_matches_single_process_with_same_global_batch(runs):
    single = runs["single"]
    assert single["replicas"] == 1 and single["iterations"] == 32
    for a, b in zip(runs["workers"][0]["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The single run moved the weights: the comparison is not between two starts.
    assert single["history"]["loss"][-1] < single["history"]["loss"][0] - 0.5


def test_distiller_trains_the_same_on_two_workers(runs):
    """`kt.models.Distiller` (its own train step, the teacher frozen) on the
    two workers: the student ends as in the single process (same tolerance)."""
    single = runs["single"]
    for worker in runs["workers"]:
        for a, b in zip(worker["student"], single["student"]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(worker["distiller_loss"], single["distiller_loss"], rtol=1e-5)
    assert single["student_moved"] > 1e-2  # it trained: not two copies of the start


def test_self_healing_decides_the_same_on_every_worker(runs):
    """The Distiller's fit has a NaN in one example of batch 5, which one
    worker's share holds: SelfHealing reads the loss summed over both
    workers, so both roll back at that step to the snapshot before it, as
    the single process does (the student weights above agree too)."""
    expected = [[6, 5, 4, "non_finite_loss"]]
    assert runs["single"]["healing"] == expected
    for worker in runs["workers"] + runs["resumed"]:
        assert worker["healing"] == expected


def test_fit_reports_global_metrics(runs):
    """Each worker's History is the metric over all 64 examples of each step,
    as the single process computes it, not its own shard's."""
    single = runs["single"]["history"]
    for worker in runs["workers"]:
        for key in ("loss", "accuracy"):
            np.testing.assert_allclose(worker["history"][key], single[key], rtol=1e-5)


def test_toolkit_callbacks_and_optimizer_schedule_act_the_same(runs):
    single = runs["single"]
    for worker in runs["workers"]:
        np.testing.assert_allclose(worker["lr"], single["lr"], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(worker["momentum"], single["momentum"], rtol=1e-6)
        assert worker["plateau"] == single["plateau"] == [[1, 2, 3], 0.125, 0]
        assert worker["swa_count"] == single["swa_count"] == 2
    assert single["lr"][4] == pytest.approx(0.1)  # warmed up over 4 steps
    assert single["momentum"][0] == 0.5 and single["momentum"][-1] == pytest.approx(0.9)


def test_only_the_chief_writes_files(runs):
    root = runs["roots"]["cluster"]
    chief, other = runs["workers"]
    assert chief["is_chief"] and not other["is_chief"]
    assert chief["snapshots"] == ["snaps/snapshot_01.keras", "snaps/snapshot_02.keras"]
    assert other["snapshots"] == ["TEMP", "TEMP"]  # written in its temporary folder
    assert sorted(os.listdir(os.path.join(root, "snaps"))) == [
        "snapshot_01.keras", "snapshot_02.keras"]
    assert "epochs.csv" in os.listdir(os.path.join(root, "diagnostics"))
    (temp,) = other["worker_temp"]
    assert not os.path.exists(temp)  # removed at the end
    assert chief["worker_temp"] == []


def test_killed_worker_resumes_from_last_epoch_and_ends_the_same(runs):
    for resumed, full in zip(runs["resumed"], runs["workers"]):
        assert resumed["epochs_run"] == [2, 3]  # epoch 2 was not complete
        assert resumed["iterations"] == full["iterations"] == 32
        for a, b in zip(resumed["weights"], full["weights"]):
            np.testing.assert_array_equal(a, b)
        # Toolkit callback state: plateau multiplier and history, SWA count,
        # warmup/momentum position (the rates of the resumed steps).
        assert resumed["plateau"] == full["plateau"]
        assert resumed["swa_count"] == full["swa_count"]
        assert resumed["lr"] == full["lr"][16:]
        assert resumed["momentum"] == full["momentum"][16:]
        # The diagnostics history of epochs 0-1 (before the kill) is kept.
        assert resumed["diagnostics"] == full["diagnostics"]
        assert len(full["diagnostics"]["steps"]) == 32
        assert len(full["diagnostics"]["epochs"]["loss"]) == 4
        for key in ("loss", "accuracy"):
            assert resumed["history"][key] == full["history"][key][2:]
    # The chief's snapshot count survives: the first snapshot came from the
    # killed run, the second from the resumed one.
    assert runs["resumed"][0]["snapshots"] == runs["workers"][0]["snapshots"]


def test_train_command_on_two_workers(tmp_path):
    """The README's two-worker use of the main job: `kerastoolkit train
    --strategy multi_worker` on two local workers trains the same model on
    both, and only the chief's export stays in `--out`."""
    ports = free_ports(2)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "kerastoolkit.cli", "train", "--epochs", "2", "--strategy",
            "multi_worker", "--validation-fraction", "0", "--out", str(out)]
    codes, logs = run_commands([(argv, {"TF_CONFIG": tf_config(ports, i)}) for i in range(2)],
                               str(tmp_path / "logs"), timeout=600)
    assert codes == [0, 0], logs
    texts = [open(path).read() for path in sorted((tmp_path / "logs").iterdir())]
    for text in texts:
        assert "strategy: MultiWorkerMirroredStrategy, 2 replica(s)" in text, text
    (accuracy,) = {re.search(r"test accuracy: (\S+)", text).group(1) for text in texts}
    assert float(accuracy) > 0.8  # both workers hold the same trained weights
    (temp,) = [re.search(r"goes to (\S+), removed at exit", t).group(1) for t in texts
               if "is not the chief" in t]
    assert not os.path.exists(temp)  # the non-chief's copy is gone
    (version,) = os.listdir(out)  # one export, the chief's; no staging folder left
    files = set(os.listdir(out / version))
    assert {"saved_model.pb", "model.keras", "epochs.csv", "report.json"} <= files, files
