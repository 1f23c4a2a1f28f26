"""One acyclic import graph: each folder of the package imports only folders below it.

The console script and `import kerastoolkit` import the package in different
orders; an import that runs from a lower layer up to a higher one makes some
order meet a partially initialised module (`kerastoolkit diagnose` once
crashed on one). This test reads every `import` in the package (at module
level and inside functions alike) and checks it against the layers below.
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

# Found, not imported: the fork test below needs a process without the toolkit.
PACKAGE_DIR = os.path.dirname(importlib.util.find_spec("kerastoolkit").origin)

# Bottom to top. A module may import its own folder and any folder of a lower
# layer; folders in one layer do not import each other.
LAYERS = (
    ("_checks", "_keras_compat"),
    ("_rate",),
    ("_callback_common",),
    ("distribute",),
    ("schedules", "losses", "initializers", "layers"),
    ("diagnostics",),
    ("optimizers", "models"),
    ("data",),
    ("preflight",),
    ("callbacks",),
    ("presets",),
    ("export",),
    ("cli",),
)
LEVEL = {folder: level for level, folders in enumerate(LAYERS) for folder in folders}


def _folder_of(module):
    parts = module.split(".")
    return parts[1] if parts[0] == "kerastoolkit" and len(parts) > 1 else None


def _imports(path):
    """`(line, imported module)` for every import of a `kerastoolkit` module in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module != "kerastoolkit":
                yield node.lineno, node.module
            else:  # `from kerastoolkit import layers`
                for alias in node.names:
                    if not alias.name.startswith("__"):  # __version__
                        yield node.lineno, f"kerastoolkit.{alias.name}"
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}:{node.lineno}: relative import; the package uses absolute imports")


def _package_modules():
    for directory, _, files in os.walk(PACKAGE_DIR):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))
                yield path, relative[:-3].replace(os.sep, ".").removesuffix(".__init__")


def test_every_folder_is_in_a_layer():
    folders = {_folder_of(module) for _, module in _package_modules()} - {None, "__main__"}
    assert folders == set(LEVEL), f"add {sorted(folders - set(LEVEL))} to LAYERS, drop {sorted(set(LEVEL) - folders)}"


def test_imports_only_go_down():
    upward = []
    for path, module in _package_modules():
        source = _folder_of(module)
        if source is None:  # the package's own __init__: it imports every sub-package
            continue
        for line, target in _imports(path):
            folder = _folder_of(target)
            if target == "kerastoolkit" and source not in ("cli", "export"):
                upward.append(f"{module}:{line} imports the whole package (name the folder it needs)")
            elif folder is not None and folder != source and LEVEL[folder] >= LEVEL[source]:
                upward.append(f"{module}:{line} ({source}, layer {LEVEL[source]}) imports {target} "
                              f"({folder}, layer {LEVEL[folder]})")
    assert not upward, "imports that do not go down:\n" + "\n".join(upward)


def test_the_project_cycle_checker_agrees():
    """The shared tool (`../shared/tools/import_cycles.py`) sees no cycle either, where it exists."""
    tool = os.path.join(os.path.dirname(PACKAGE_DIR), "..", "shared", "tools", "import_cycles.py")
    if not os.path.exists(tool):  # a clone outside the workspace: the layer test above is the check
        tool = None
    if tool is not None:
        result = subprocess.run([sys.executable, tool, PACKAGE_DIR], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


PUBLIC_MODULES = sorted(
    module for _, module in _package_modules()
    if not any(part.startswith("_") for part in module.split(".")[1:]) and module != "kerastoolkit"
)

# A model holding an object of every folder that registers Keras objects: a
# layer, an initializer, a loss, a schedule and optimizers.
_SAVE = """
import sys
import keras
import numpy as np
import kerastoolkit as kt

inputs = keras.Input((8, 8, 1))
standardize = kt.layers.Standardize(scale=True)
standardize.adapt(np.random.default_rng(0).uniform(0, 16, (32, 8, 8, 1)).astype("float32"))
hidden = keras.layers.Flatten()(standardize(inputs))
dense = keras.layers.Dense(8, kernel_initializer=kt.initializers.kaiming(seed=1))
hidden = kt.layers.WeightNormalization(dense)(hidden)
model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
model.compile(kt.optimizers.Lookahead(kt.optimizers.SGD(kt.schedules.Linear(0.1, total=5))),
              kt.losses.SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
x = np.random.default_rng(1).uniform(0, 16, (4, 8, 8, 1)).astype("float32")
model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
model.save(sys.argv[1])
np.save(sys.argv[2], model.predict(x, verbose=0))
np.save(sys.argv[3], x)
"""


def _in_a_fork(body):
    """Runs `body()` in a forked child of this process; returns (exit status, its error).

    The parent has imported Keras and TensorFlow (seconds) but must not have
    imported the toolkit: each child then starts from no toolkit module at
    all, as a fresh process would, in a fraction of a second.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        status, message = 0, b""
        try:
            body()
        except BaseException as error:  # noqa: BLE001  (reported to the parent)
            status, message = 1, f"{type(error).__name__}: {error}".encode()[-2000:]
        os.write(write, message)
        os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message


_PARENT = """
import importlib, json, os, sys
sys.path.insert(0, {tests!r})
import keras, numpy as np, tensorflow  # noqa: F401  (paid once, before the forks)
assert not any(name.startswith("kerastoolkit") for name in sys.modules)
import test_import_graph as graph

def first(module, as_the_command):
    def body():
        if as_the_command:  # what the console script does: the package defers its sub-packages
            sys.argv[0] = os.path.join(os.path.dirname(sys.executable), "kerastoolkit")
        importlib.import_module(module)
        import kerastoolkit
        if as_the_command:
            kerastoolkit._import_subpackages()  # what every command runs before its work
        if load:
            model = keras.saving.load_model(sys.argv[1])
            x = np.load(sys.argv[3])
            np.testing.assert_allclose(model.predict(x, verbose=0), np.load(sys.argv[2]), atol=1e-5)
    return body

failures = {{}}
script_loaded = False
for module in graph.PUBLIC_MODULES:
    folder = module.split(".")[1]
    # In a script, `import kerastoolkit.<anything>` runs the package's __init__
    # first (every Keras-only sub-package in one fixed order), then the folder:
    # one fork per folder covers a script's orders.
    for as_the_command in (True, False) if module == "kerastoolkit." + folder else (True,):
        # Loads (seconds each): after each folder imported first as the command does, and once
        # in a script.
        load = module == "kerastoolkit." + folder if as_the_command else not script_loaded
        script_loaded = script_loaded or not as_the_command
        status, message = graph._in_a_fork(first(module, as_the_command))
        if status:
            failures[f"{{module}} ({{'console script' if as_the_command else 'import'}})"] = message
print(json.dumps(failures))
"""


@pytest.mark.slow
def test_each_public_module_imported_first_and_alone_then_toolkit_files_load(tmp_path):
    """In a fresh process, every public module imports first and alone, in the console
    script's order (sub-packages deferred) and in a script's; a `.keras` file holding
    toolkit objects of every kind then loads and predicts what it did when saved."""
    paths = [str(tmp_path / name) for name in ("model.keras", "expected.npy", "x.npy")]
    subprocess.run([sys.executable, "-c", _SAVE, *paths], check=True, capture_output=True, text=True)
    tests = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, "-c", _PARENT.format(tests=tests), *paths],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failures, json.dumps(failures, indent=1)
