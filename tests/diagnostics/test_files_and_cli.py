"""Log files (CSVLogger, steps CSV), bad input, and the `diagnose` CLI."""

import json

import numpy as np
import pytest

from kerastoolkit import cli
from kerastoolkit.diagnostics import diagnose


def write(path, text):
    path.write_text(text)
    return str(path)


def epochs_csv(tmp_path, n=12):
    loss = 0.3 + 2.0 * np.exp(-np.arange(n) / 2.0)
    rows = ["epoch,accuracy,loss,val_loss"] + [
        f"{i},{0.5 + 0.03 * i},{float(l)!r},{float(l) + 0.1!r}" for i, l in enumerate(loss)
    ]
    return write(tmp_path / "epochs.csv", "\n".join(rows) + "\n"), loss


def test_csvlogger_format_and_na(tmp_path):
    path = write(tmp_path / "e.csv", "epoch,loss,val_loss\n0,2.3,NA\n1,2.3,2.4\n2,2.3,NA\n3,2.3,2.4\n")
    report = diagnose(path)
    assert report.codes == ["not_training"]
    assert np.isnan(report.epochs["val_loss"][0])


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "the file is empty"),
        ("   \n\n", "the file is empty"),
        ("epoch,loss\n", "no data rows"),
        ("epoch,loss\n0,1.0\n1,0.5,7\n", "line 3: malformed row, expected 2 fields"),
        ("epoch,loss\n0,abc\n", "'abc' is not a number"),
        ("epoch,acc\n0,0.5\n1,0.6\n", "no 'loss' column"),
        ("0,1.0\n1,0.5\n", "no header row"),
        ("epoch,loss,loss\n0,1,1\n", "malformed header"),
    ],
)
def test_bad_epoch_files_name_file_and_problem(tmp_path, text, problem):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError) as info:
        diagnose(path)
    assert path in str(info.value) and problem in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        diagnose(str(tmp_path / "nope.csv"))


def test_bad_steps_files(tmp_path):
    ok, _ = epochs_csv(tmp_path)
    no_step = write(tmp_path / "s1.csv", "loss\n1.0\n0.9\n")
    with pytest.raises(ValueError, match=r"s1\.csv: no 'step' column"):
        diagnose(ok, steps=no_step)
    no_loss = write(tmp_path / "s2.csv", "step,value\n0,1.0\n")
    with pytest.raises(ValueError, match=r"s2\.csv: no 'loss' column"):
        diagnose(ok, steps=no_loss)
    rows = "\n".join(f"{i},{i // 10},{1.0 / (i + 1)!r}" for i in range(200))
    too_many = write(tmp_path / "s3.csv", "step,epoch,loss\n" + rows + "\n")
    with pytest.raises(ValueError) as info:
        diagnose(ok, steps=too_many)
    message = str(info.value)
    assert "Mismatched lengths" in message and too_many in message and ok in message
    assert "cover 20 epochs" in message and "has 12" in message


def test_steps_csv_epoch_column_gives_steps_per_epoch(tmp_path):
    ok, loss = epochs_csv(tmp_path)
    rows = "\n".join(f"{i},{i // 25},{float(loss[i // 25])!r}" for i in range(12 * 25))
    steps = write(tmp_path / "steps.csv", "step,epoch,loss\n" + rows + "\n")
    report = diagnose(ok, steps=steps)
    assert report.steps_per_epoch == 25 and len(report.steps) == 300


def test_cli_text_json_plot(tmp_path, capsys):
    path = write(tmp_path / "e.csv", "epoch,loss\n" + "\n".join(f"{i},2.3" for i in range(6)) + "\n")
    assert cli.main(["diagnose", path]) == 0
    assert "not_training" in capsys.readouterr().out
    png = str(tmp_path / "out.png")
    assert cli.main(["diagnose", path, "--json", "--plot", png]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [f["code"] for f in findings] == ["not_training"]
    with open(png, "rb") as handle:
        assert handle.read(4) == b"\x89PNG"


def test_cli_healthy_json_is_empty_list(tmp_path, capsys):
    path, _ = epochs_csv(tmp_path)
    assert cli.main(["diagnose", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_cli_bad_file_one_line_error(tmp_path, capsys):
    path = write(tmp_path / "empty.csv", "")
    assert cli.main(["diagnose", path]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "empty" in err[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_cli_help_mentions_every_argument():
    subparsers = cli.build_parser()._subparsers._group_actions[0]
    text = subparsers.choices["diagnose"].format_help()
    for flag in ("EPOCHS.csv", "--steps", "--json", "--plot"):
        assert flag in text
