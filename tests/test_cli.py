"""The `kerastoolkit` command: the README's main job, its flags and its errors."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerastoolkit import cli
from tests.conftest import requires_tensorflow
from tests.harness import subprocess_env


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "kerastoolkit.cli", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )


def _help(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 0
    return capsys.readouterr().out


def test_help_explains_every_flag(capsys):
    assert "train" in _help(["--help"], capsys)
    text = _help(["train", "--help"], capsys)
    train_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help, action.option_strings


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (["--epochs", "-3"], "--epochs must be a positive integer, got -3"),
        (["--batch-size", "x"], "--batch-size must be a positive integer, got 'x'"),
        (["--validation-fraction", "1.5"], "--validation-fraction must be in [0, 1), got 1.5"),
        (["--early-stopping-patience", "-1"], "--early-stopping-patience must be an integer >= 0, got -1"),
        (["--preset", "adamw"], "invalid choice: 'adamw'"),
        (["--snapshots", "0"], "--snapshots must be a positive integer, got 0"),
        (["--warmup-epochs", "-1"], "--warmup-epochs must be an integer >= 0, got -1"),
        (["--snapshots", "2", "--warmup-epochs", "1"], "--snapshots and --warmup-epochs do not combine"),
        (["--snapshots", "5", "--epochs", "3"], "--snapshots 5 needs at least as many epochs, got --epochs 3"),
        (["--out", "/dev/null/models"], "cannot write to output directory '/dev/null/models'"),
    ],
)
def test_bad_arguments_give_one_line_and_nonzero_exit(args, message, capsys):
    try:
        code = cli.main(["train", *args])
    except SystemExit as exit:
        code = exit.code
    assert code != 0
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0], lines


def test_the_installed_command_reports_errors_without_traceback():
    result = _run("train", "--dataset", "cifar")
    assert result.returncode == 2
    # TensorFlow's own start-up log lines (absl, before the CLI runs) aside,
    # the command says one thing.
    lines = [l for l in result.stderr.splitlines() if l.startswith("kerastoolkit")]
    assert lines == [
        "kerastoolkit train: error: argument --dataset: invalid choice: 'cifar' "
        "(choose from 'digits', 'fashion_mnist', 'mnist1d')"
    ]
    assert "Traceback" not in result.stderr


@requires_tensorflow
@pytest.mark.slow
def test_train_digits_exports_versions_that_serve_the_same_probabilities(tmp_path, capsys):
    import kerastoolkit as kt

    out = str(tmp_path / "digits")
    assert cli.main(["train", "--dataset", "digits", "--out", out, "--verbose", "0"]) == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("test accuracy: ")[1].split()[0])
    assert accuracy >= 0.95, printed
    version = os.path.join(out, "1")
    for name in ("saved_model.pb", "model.keras", "history.csv", "curves.png", "steps.csv", "report.json"):
        assert os.path.exists(os.path.join(version, name)), name
    assert "Curve diagnosis" in printed
    # The run's logs feed `kerastoolkit diagnose`, which agrees with the saved report.
    assert cli.main(["diagnose", os.path.join(version, "history.csv"), "--steps", os.path.join(version, "steps.csv"), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    with open(os.path.join(version, "report.json")) as f:
        saved = json.load(f)
    assert [f["code"] for f in findings] == [f["code"] for f in saved["findings"]]
    with open(os.path.join(version, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) <= 30 and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(rows[0])

    x_test, y_test = kt.data.load("digits", "test", as_numpy=True)
    model = keras.saving.load_model(os.path.join(version, "model.keras"))
    expected = model.predict(x_test, verbose=0)
    served = kt.export.load(version)(x_test)
    assert np.max(np.abs(served - expected)) < 1e-5
    assert np.mean(np.argmax(served, axis=1) == y_test) == pytest.approx(accuracy, abs=1e-4)

    assert cli.main(["train", "--out", out, "--epochs", "1", "--verbose", "0"]) == 0
    assert os.path.exists(os.path.join(out, "2", "saved_model.pb"))
    assert sorted(os.listdir(out)) == ["1", "2"]


@requires_tensorflow
@pytest.mark.slow
def test_train_fashion_mnist_one_epoch(tmp_path):
    result = _run("train", "--dataset", "fashion_mnist", "--epochs", "1", "--out", str(tmp_path / "fm"), "--verbose", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.8  # one epoch of the 2-conv net; the published 2-conv baselines are 87.6-91.6%
    assert os.path.exists(tmp_path / "fm" / "1" / "saved_model.pb")


@requires_tensorflow
@pytest.mark.slow
def test_train_with_warmup_plateau_and_snapshots_exports_the_ensemble(tmp_path, capsys):
    import kerastoolkit as kt

    out = str(tmp_path / "snap")
    argv = ["train", "--out", out, "--epochs", "9", "--snapshots", "3",
            "--plateau-patience", "2", "--preset", "sgd_warmup_cosine", "--verbose", "0"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "snapshot ensemble of 3 models" in printed
    assert "overridden by --plateau-patience 2, --snapshots 3" in printed
    version = os.path.join(out, "1")
    ensemble = keras.saving.load_model(os.path.join(version, "model.keras"))
    assert isinstance(ensemble, kt.models.Ensemble) and len(ensemble.members) == 3
    x_test, _ = kt.data.load("digits", "test", as_numpy=True)
    served = kt.export.load(version)(x_test)
    assert np.max(np.abs(served - ensemble.predict(x_test, verbose=0))) < 1e-5
    with open(os.path.join(version, "history.csv")) as f:
        rates = [float(r["learning_rate"]) for r in csv.DictReader(f)]
    assert len(rates) == 9
    # The rate logged after an epoch is the one the next step uses (as Keras
    # logs it). Cycle 1 anneals from the preset's 0.1 x 32/256, and after its
    # last epoch the rate is back at the restart value (no plateau reduction
    # can happen before epoch 3 with patience 2).
    peak = 0.1 * 32 / 256
    assert rates[0] == pytest.approx(peak / 2 * (1 + np.cos(np.pi / 3)), rel=1e-5)
    assert rates[1] == pytest.approx(peak / 2 * (1 + np.cos(2 * np.pi / 3)), rel=1e-5)
    assert rates[2] == pytest.approx(peak, rel=1e-5)
