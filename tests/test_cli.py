"""The `kerastoolkit` command: the README's main job, its flags and its errors."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerastoolkit import cli
from tests.conftest import requires_tensorflow
from tests.harness import subprocess_env


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Overrides conftest's: most tests here only parse (clearing costs ~1 s each),
    and the command seeds and builds its own models."""
    yield


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


def _error(argv, capsys):
    """Runs the command, expecting a failure; returns its one stderr line."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    captured = capsys.readouterr()
    lines = [l for l in captured.err.splitlines() if l.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_help_explains_every_flag(capsys):
    assert "train" in _help(["--help"], capsys)
    text = _help(["train", "--help"], capsys)
    train_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help, action.option_strings


def test_help_names_every_preset_and_the_dataset_sizes_are_right(capsys):
    # The parser imports no Keras, so it names the presets and the training
    # split sizes itself: they must agree with the library.
    import kerastoolkit as kt

    text = " ".join(_help(["train", "--help"], capsys).split())
    for name in kt.presets.names():
        assert name in text
    for name, defaults in cli.TRAIN_DEFAULTS.items():
        assert kt.data.info(name).builder.name == "kt_" + name
    x, _ = kt.data.load("digits", "train", as_numpy=True)
    assert cli.TRAIN_DEFAULTS["digits"]["train_examples"] == len(x)
    assert cli.TRAIN_DEFAULTS["fashion_mnist"]["train_examples"] == 60000
    assert cli.TRAIN_DEFAULTS["mnist1d"]["train_examples"] == 4000


def test_version(capsys):
    import kerastoolkit

    assert _help(["--version"], capsys).strip() == f"kerastoolkit {kerastoolkit.__version__}"


# Every numeric flag: not a number, inf, nan, negative, huge, and its own edge cases.
_INTEGER = "must be an integer from {low} to {high}, got {value}"
BAD_VALUES = [
    (["--epochs", "0"], "argument --epochs: " + _INTEGER.format(low=1, high="10,000", value="0")),
    (["--epochs", "-3"], "argument --epochs: " + _INTEGER.format(low=1, high="10,000", value="-3")),
    (["--epochs", "inf"], "argument --epochs: " + _INTEGER.format(low=1, high="10,000", value="'inf'")),
    (["--epochs", "nan"], "argument --epochs: " + _INTEGER.format(low=1, high="10,000", value="'nan'")),
    (["--epochs", "2.5"], "argument --epochs: " + _INTEGER.format(low=1, high="10,000", value="'2.5'")),
    (["--epochs", "10001"], "argument --epochs: " + _INTEGER.format(low=1, high="10,000", value="10001")),
    (["--batch-size", "x"], "argument --batch-size: must be a positive integer, got 'x'"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
    (["--batch-size", "inf"], "argument --batch-size: must be a positive integer, got 'inf'"),
    (["--batch-size", "2000"], "argument --batch-size: must be at most the 1293 training examples of digits, got 2000"),
    (["--batch-size", "99999999999999999999"], "argument --batch-size: must be at most the 1293 training examples"),
    (["--learning-rate", "inf"], "argument --learning-rate: must be a finite number in (0, 10], got inf"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number in (0, 10], got nan"),
    (["--learning-rate=-inf"], "argument --learning-rate: must be a finite number in (0, 10], got -inf"),
    (["--learning-rate", "1e309"], "argument --learning-rate: must be a finite number in (0, 10], got 1e309"),
    (["--learning-rate", "0"], "argument --learning-rate: must be a finite number in (0, 10], got 0"),
    (["--learning-rate=-0.1"], "argument --learning-rate: must be a finite number in (0, 10], got -0.1"),
    (["--learning-rate", "11"], "argument --learning-rate: must be a finite number in (0, 10], got 11"),
    (["--learning-rate", "fast"], "argument --learning-rate: must be a finite number in (0, 10], got 'fast'"),
    (["--warmup-epochs", "-1"], "argument --warmup-epochs: " + _INTEGER.format(low=0, high="10,000", value="-1")),
    (["--warmup-epochs", "inf"], "argument --warmup-epochs: " + _INTEGER.format(low=0, high="10,000", value="'inf'")),
    (["--warmup-epochs", "30"], "argument --warmup-epochs: must be fewer than the number of epochs (30), got 30"),
    (["--warmup-epochs", "3", "--epochs", "2"], "argument --warmup-epochs: must be fewer than the number of epochs (2), got 3"),
    (["--plateau-patience", "-1"], "argument --plateau-patience: " + _INTEGER.format(low=0, high="10,000", value="-1")),
    (["--plateau-patience", "nan"], "argument --plateau-patience: " + _INTEGER.format(low=0, high="10,000", value="'nan'")),
    (["--plateau-patience", "1e9"], "argument --plateau-patience: " + _INTEGER.format(low=0, high="10,000", value="'1e9'")),
    (["--early-stopping-patience", "-1"], "argument --early-stopping-patience: " + _INTEGER.format(low=0, high="10,000", value="-1")),
    (["--early-stopping-patience", "100000"], "argument --early-stopping-patience: " + _INTEGER.format(low=0, high="10,000", value="100000")),
    (["--snapshots", "0"], "argument --snapshots: " + _INTEGER.format(low=1, high="10,000", value="0")),
    (["--snapshots", "inf"], "argument --snapshots: " + _INTEGER.format(low=1, high="10,000", value="'inf'")),
    (["--snapshots", "2", "--warmup-epochs", "1"], "argument --snapshots: does not combine with --warmup-epochs"),
    (["--snapshots", "5", "--epochs", "3"], "argument --snapshots: must be at most the number of epochs (3), got 5"),
    (["--validation-fraction", "1.5"], "argument --validation-fraction: must be a number in [0, 1), got 1.5"),
    (["--validation-fraction", "1"], "argument --validation-fraction: must be a number in [0, 1), got 1"),
    (["--validation-fraction", "-0.1"], "argument --validation-fraction: must be a number in [0, 1), got -0.1"),
    (["--validation-fraction", "nan"], "argument --validation-fraction: must be a number in [0, 1), got nan"),
    (["--validation-fraction", "inf"], "argument --validation-fraction: must be a number in [0, 1), got inf"),
    (["--validation-fraction", "half"], "argument --validation-fraction: must be a number in [0, 1), got 'half'"),
    (["--validation-fraction", "0.999"],
     "argument --validation-fraction: 0.999 leaves 1 training and 1436 validation examples of the 1437 of digits; "
     "each split needs at least 100: use 0 (no validation) or a fraction from 0.07 to 0.93"),
    (["--validation-fraction", "0.01"], "argument --validation-fraction: 0.01 leaves 1423 training and 14 validation examples"),
    (["--validation-fraction", "0.9999", "--dataset", "fashion_mnist"],
     "argument --validation-fraction: 0.9999 leaves 6 training and 59994 validation examples of the 60000 of fashion_mnist"),
    (["--seed", "-1"], "argument --seed: " + _INTEGER.format(low=0, high="4,294,967,295", value="-1")),
    (["--seed", "1e100"], "argument --seed: " + _INTEGER.format(low=0, high="4,294,967,295", value="'1e100'")),
    (["--seed", str(2**64)], "argument --seed: " + _INTEGER.format(low=0, high="4,294,967,295", value=str(2**64))),
    (["--verbose", "3"], "argument --verbose: invalid choice: 3 (choose from 0, 1, 2)"),
    (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["--out", "/dev/null/models"], "argument --out: cannot create '/dev/null/models': '/dev/null' is a file"),
    (["--augment", "geometric", "--dataset", "mnist1d"],
     "argument --augment: needs an image dataset (digits, fashion_mnist), got --dataset mnist1d"),
    (["--explain", "2", "--dataset", "mnist1d"],
     "argument --explain: needs an image dataset (digits, fashion_mnist), got --dataset mnist1d"),
    (["--explain", "0"], "argument --explain: " + _INTEGER.format(low=1, high=64, value="0")),
    (["--explain", "inf"], "argument --explain: " + _INTEGER.format(low=1, high=64, value="'inf'")),
    (["--strategy", "tpu2"], "argument --strategy: invalid choice: 'tpu2'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("args, message", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_flag_values_give_one_line_naming_the_flag_once(args, message, capsys):
    line = _error(["train", *args], capsys)
    assert line.startswith("kerastoolkit: error: ") and message in line, line
    flag = args[0].split("=")[0]
    assert line.count(flag) == 1, line  # "argument --epochs: must be...", not the flag twice


def test_out_naming_a_file_is_explained(tmp_path, capsys):
    target = tmp_path / "model.txt"
    target.write_text("not a folder")
    line = _error(["train", "--out", str(target)], capsys)
    assert line == f"kerastoolkit: error: argument --out: {str(target)!r} is a file, not a folder"


def test_diagnose_errors_share_the_prefix(tmp_path, capsys):
    line = _error(["diagnose", str(tmp_path)], capsys)
    assert line.startswith("kerastoolkit: error: EPOCHS.csv ") and "is a folder, not a CSV file" in line
    assert os.path.join(str(tmp_path), "epochs.csv") in line
    binary = tmp_path / "epochs.csv"
    binary.write_bytes(b"epoch,loss\n0,\xff\xfe2.3\n")
    line = _error(["diagnose", str(binary)], capsys)
    assert line == (f"kerastoolkit: error: EPOCHS.csv {str(binary)!r} is not a UTF-8 text file "
                    "(byte 13: invalid start byte); expected a CSV file")
    good = tmp_path / "good.csv"
    good.write_text("epoch,loss\n0,2.3\n1,2.2\n")
    line = _error(["diagnose", str(good), "--steps", str(tmp_path / "missing.csv")], capsys)
    assert line == f"kerastoolkit: error: --steps {str(tmp_path / 'missing.csv')!r}: no such file"
    line = _error(["diagnose"], capsys)
    assert line == "kerastoolkit: error: the following arguments are required: EPOCHS.csv"


def test_diagnose_json_is_the_whole_report(tmp_path, capsys):
    short = tmp_path / "short.csv"
    short.write_text("epoch,loss,val_loss\n0,2.3,2.4\n1,1.2,1.3\n")
    assert cli.main(["diagnose", str(short), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert cli.main(["diagnose", str(short)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert printed["summary"] == text[0]  # the text report's first line
    assert printed["healthy"] is (not printed["findings"])
    assert printed["notes"] and [f"(note: {n})" for n in printed["notes"]] == [l for l in text if l.startswith("(note")]
    assert printed["epochs"]["loss"] == [2.3, 1.2] and printed["epochs"]["val_loss"] == [2.4, 1.3]


_LAUNCHER = textwrap.dedent(
    """
    # What pip writes as the `kerastoolkit` console script, then a look at what it imported.
    import sys
    from kerastoolkit.cli import main
    try:
        main()
    except SystemExit as exit:
        print("exit", exit.code)
    print("heavy:", sorted(m for m in ("tensorflow", "keras", "jax", "tensorflow_datasets") if m in sys.modules))
    """
)


@pytest.mark.parametrize(
    "args, status, stderr",
    [
        (["--help"], 0, ""),
        (["train", "--help"], 0, ""),
        (["diagnose", "--help"], 0, ""),
        (["distill", "--help"], 0, ""),
        (["--version"], 0, ""),
        (["train", "--epochs", "inf"], 2,
         "kerastoolkit: error: argument --epochs: must be an integer from 1 to 10,000, got 'inf'\n"),
        (["train", "--dataset", "cifar"], 2,
         "kerastoolkit: error: argument --dataset: invalid choice: 'cifar' "
         "(choose from 'digits', 'fashion_mnist', 'mnist1d')\n"),
        (["trian"], 2, "kerastoolkit: error: argument COMMAND: invalid choice: 'trian' (choose from 'train', 'presets', 'export', 'diagnose', 'distill')\n"),
        (["diagnose", "/"], 2,
         "kerastoolkit: error: EPOCHS.csv '/' is a folder, not a CSV file (give the file inside it, e.g. '/epochs.csv')\n"),
    ],
)
def test_the_command_answers_help_and_errors_without_importing_keras(args, status, stderr, tmp_path):
    script = tmp_path / "kerastoolkit"  # the name makes `import kerastoolkit` defer Keras
    script.write_text(_LAUNCHER)
    env = subprocess_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # nothing to hide: nothing is imported
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.stderr == stderr
    assert result.stdout.splitlines()[-2:] == [f"exit {status}", "heavy: []"]


def test_a_failed_run_leaves_no_output_folder_and_progress_is_one_line_per_epoch_in_a_log(tmp_path, capsys, monkeypatch):
    seen = {}

    def failing_fit(self, *args, **kwargs):
        seen.update(kwargs, staging=[n for n in os.listdir(seen["out"]) if n.startswith(".train-")])
        raise RuntimeError("training failed")

    monkeypatch.setattr(keras.Model, "fit", failing_fit)
    out = seen["out"] = str(tmp_path / "new" / "models")
    with pytest.raises(RuntimeError, match="training failed"):
        cli.main(["train", "--out", out, "--epochs", "1"])
    assert len(seen["staging"]) == 1  # logs were staged in OUT during the fit
    assert os.listdir(tmp_path) == []  # then neither models/ nor new/ stays
    assert seen["verbose"] == 2  # output captured, not a terminal
    # An existing folder stays, without the staging folder.
    existing = tmp_path / "existing"
    existing.mkdir()
    seen["out"] = str(existing)
    with pytest.raises(RuntimeError):
        cli.main(["train", "--out", str(existing), "--epochs", "1", "--verbose", "1"])
    assert os.listdir(existing) == [] and seen["verbose"] == 1
    # An unknown preset is found before anything is written.
    line = _error(["train", "--out", out, "--preset", "adamw"], capsys)
    assert line.startswith("kerastoolkit: error: argument --preset: ") and "Did you mean 'adam'" in line
    assert os.listdir(tmp_path) == ["existing"]


@requires_tensorflow
@pytest.mark.slow
def test_train_fashion_mnist_with_augmentation_serves_raw_uint8_images(tmp_path):
    """Issue 8's end-to-end case: `--augment geometric` trains, exports and serves raw uint8 pixels."""
    import kerastoolkit as kt

    # One augmented epoch on a tenth of the split; the preflight has tests of its own.
    result = _run("train", "--dataset", "fashion_mnist", "--epochs", "1", "--augment", "geometric", "--validation-fraction", "0.9",
                  "--no-preflight", "--out", str(tmp_path / "fm"), "--verbose", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.6  # chance: 0.1; the published 2-conv baselines are 87.6-91.6% after full training
    version = str(tmp_path / "fm" / "1")
    x_test, y_test = kt.data.load("fashion_mnist", "test", as_numpy=True, raw=True)
    assert x_test.dtype == np.uint8
    served = kt.export.load(version)
    outputs = served.predict(x_test[:500])
    served_accuracy = np.mean(np.argmax(outputs["probabilities"], axis=1) == y_test[:500])
    assert abs(served_accuracy - accuracy) < 0.08, (served_accuracy, accuracy)  # the tested model, on 500 images
    assert outputs["top_k_class_names"][0, 0].decode() in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    # The augmentation is off at inference: the same images give the same probabilities.
    np.testing.assert_array_equal(served.predict(x_test[:64])["probabilities"], outputs["probabilities"][:64])


def test_presets_command_lists_every_preset_with_its_source(capsys):
    import kerastoolkit as kt

    assert cli.main(["presets"]) == 0
    printed = capsys.readouterr().out
    for entry in kt.presets.list():
        assert entry["name"] in printed and entry["source"] in printed


def test_export_command_checks_its_model_file(tmp_path, capsys):
    line = _error(["export", str(tmp_path), "--out", str(tmp_path / "out")], capsys)
    assert line == f"kerastoolkit: error: argument MODEL.keras: {str(tmp_path)!r} is not a file"
    other = tmp_path / "model.h5"
    other.write_text("")
    line = _error(["export", str(other), "--out", str(tmp_path / "out")], capsys)
    assert "expected a .keras file" in line


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
    x_test, _ = kt.data.load("digits", "test", as_numpy=True, raw=True)
    served = kt.export.load(version)(x_test)
    assert np.max(np.abs(served - ensemble.predict(x_test, verbose=0))) < 1e-5
    with open(os.path.join(version, "epochs.csv")) as f:
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
