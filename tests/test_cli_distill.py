"""`kerastoolkit distill`: its flags and its errors (the runs themselves are in test_console_script.py)."""

import os

import keras
import numpy as np
import pytest

from kerastoolkit import cli
from tests.conftest import requires_tensorflow


def _error(argv, capsys):
    """Runs the command, expecting a usage failure; returns its one stderr line."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("a teacher?")
    return tmp_path


BAD = [
    (["missing.keras"], "argument TEACHER: 'missing.keras': no such file or folder"),
    (["notes.txt"], "argument TEACHER: expected a .keras file or a SavedModel folder, got 'notes.txt'"),
    (["empty"], "argument TEACHER: 'empty' is a folder without a SavedModel"),
    (["empty", "--alpha", "1.5"], "argument --alpha: must be a finite number in [0, 1], got 1.5"),
    (["empty", "--temperature", "0"], "argument --temperature: must be a finite number in (0, 100], got 0"),
    (["empty", "--temperature", "nan"], "argument --temperature: must be a finite number in (0, 100], got nan"),
    (["empty", "--teacher-outputs", "scores"], "argument --teacher-outputs: invalid choice: 'scores'"),
    (["empty", "--snapshots", "2"], "unrecognized arguments: --snapshots 2"),
    (["empty", "--epochs", "0"], "argument --epochs: must be an integer from 1 to 10,000, got 0"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_give_one_line(args, message, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    line = _error(["distill", *args], capsys)
    assert line.startswith("kerastoolkit: error: ") and message in line, line


def test_help_explains_every_flag_and_the_loss(capsys):
    with pytest.raises(SystemExit):
        cli.main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    parser = cli.build_parser()._subparsers._group_actions[0].choices["distill"]
    for action in parser._actions:
        assert action.help, action.option_strings
        for flag in action.option_strings:
            assert flag in text
    assert "alpha * CE(y, student) + (1 - alpha) * T^2 * KL" in text and "serving_default" in text
    assert "(default: savedmodels/DATASET_student)" in text


@requires_tensorflow
def test_a_teacher_that_does_not_fit_the_dataset_is_one_line_and_writes_nothing(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    for name, classes, activation in (("three.keras", 3, "softmax"), ("logits.keras", 10, None)):
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(classes, activation=activation)])
        model.layers[-1].set_weights([np.full((64, classes), 0.5, "float32"), np.zeros(classes, "float32")])
        model.save(str(tmp_path / name))
    out = str(tmp_path / "out")
    line = _error(["distill", str(tmp_path / "three.keras"), "--out", out, "--epochs", "1"], capsys)
    assert "gives outputs of shape (3,), the dataset has 10 classes" in line, line
    # Logits taken for probabilities: the rows do not sum to 1, and the flag to use is named.
    line = _error(["distill", str(tmp_path / "logits.keras"), "--out", out, "--epochs", "1"], capsys)
    assert "does not output probabilities" in line and "--teacher-outputs logits" in line, line
    assert not os.path.exists(out)
