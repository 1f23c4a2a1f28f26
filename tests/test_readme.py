"""Every ```python block of README.md runs as it stands, so the README cannot drift.

The blocks run one after the other in one fresh Python process (the way a user
pastes them into a script), each in a fresh namespace and a fresh Keras
session, in a temporary working directory. A block added to the README (the
tour subsections included) is picked up automatically.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.harness import subprocess_env

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

_RUNNER = textwrap.dedent(
    """
    import json
    import sys
    import traceback
    import warnings

    import keras

    # Keras warns that fit's shuffle=True is ignored for a tf.data.Dataset: the
    # README's snippets pass shuffle=False instead of teaching users to ignore it.
    warnings.filterwarnings("error", message="`shuffle=True` was passed, but will be ignored")

    for block in json.load(open(sys.argv[1])):
        keras.backend.clear_session()
        print(f"--- README.md line {block['line']} ({block['heading']})", flush=True)
        try:
            code = compile(block["code"], f"README.md:{block['line']}", "exec")
            exec(code, {"__name__": "__main__"})
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the block at README.md line {block['line']} ({block['heading']})", flush=True)
            sys.exit(1)
    print("all blocks ran", flush=True)
    """
)


def python_blocks(text):
    """The README's ```python blocks: `{"line", "heading", "code"}` in order."""
    blocks = []
    heading = "top"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```python":
            start = i + 1
            end = start
            while lines[end].strip() != "```":
                end += 1
            blocks.append({"line": start + 1, "heading": heading, "code": "\n".join(lines[start:end]) + "\n"})
            i = end
        elif line.startswith("```"):  # skip other fenced blocks (their '#' lines are not headings)
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
        i += 1
    return blocks


def test_python_blocks_are_found():
    with open(README) as handle:
        text = handle.read()
    blocks = python_blocks(text)
    assert len(blocks) == text.count("```python") >= 8
    # Complete: each block imports what it uses from the toolkit and Keras.
    for block in blocks:
        for name in ("kt", "keras", "tfds"):
            if re.search(rf"\b{name}\.", block["code"]):
                assert re.search(rf"^import \S+ as {name}$|^import {name}$", block["code"], re.M), (name, block["line"])


@pytest.mark.slow
def test_every_python_block_runs(tmp_path):
    with open(README) as handle:
        blocks = python_blocks(handle.read())
    path = tmp_path / "blocks.json"
    path.write_text(json.dumps(blocks))
    runner = tmp_path / "run_readme_blocks.py"
    runner.write_text(_RUNNER)
    env = subprocess_env()
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env.get("PYTHONPATH")] if p
    )
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(runner), str(path)], cwd=work, capture_output=True, text=True, env=env, timeout=900
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "all blocks ran" in result.stdout, output[-6000:]
    # What the blocks say they write is there.
    for name in ("epochs.csv", "steps.csv", "report.json", "curves.png", "statistics.json"):
        assert (work / "runs" / "digits" / name).exists(), name
    assert (work / "savedmodels" / "digits_readme" / "1" / "saved_model.pb").exists()
