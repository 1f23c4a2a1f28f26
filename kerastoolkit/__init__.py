"""kerastoolkit: plug-ins for Keras 3 that make training a neural network well the default.

```python
import kerastoolkit as kt
```

The sub-packages that only use `keras.ops` (schedules, optimizers, layers,
initializers, callbacks, models, diagnostics, presets) are imported at once,
so that every public object is registered with Keras's serialization and a
`.keras` file that uses them loads after `import kerastoolkit`. The ones that
need TensorFlow itself (`data`, `export`, `distribute`) are imported on first
use, so the plug-ins also run on Keras's JAX backend without TensorFlow.
Started by the `kerastoolkit` command, the package defers all of them to
their first use, so that `kerastoolkit --help` answers at once.
"""

import importlib
import os
import sys

__version__ = "0.1.0"


def _started_by_the_command():
    """True when the `kerastoolkit` console script is importing the package.

    Its `--help`, `--version` and argument errors need no Keras (whose import
    takes seconds and loads TensorFlow), so the sub-packages below are then
    imported on first use instead, all together (see `__getattr__`).
    """
    argv = getattr(sys, "argv", None) or [""]
    name = os.path.splitext(os.path.basename(argv[0] or ""))[0]
    return name in ("kerastoolkit", "kerastoolkit-script")


_SUBPACKAGES = (
    "callbacks", "diagnostics", "initializers", "layers", "losses", "models", "optimizers", "preflight", "presets", "schedules",
)
_LAZY_SUBPACKAGES = ("data", "export", "distribute")


def _import_subpackages():
    """Imports every sub-package that only needs Keras (registering their objects).

    `import kerastoolkit` does it, except in the `kerastoolkit` command,
    which calls this once it has parsed its arguments.
    """
    for subpackage in _SUBPACKAGES:
        globals()[subpackage] = importlib.import_module(f"kerastoolkit.{subpackage}")


if not _started_by_the_command():
    _import_subpackages()


def __getattr__(name):
    if name in _SUBPACKAGES:  # deferred by the command: import them all (registration)
        _import_subpackages()
        return globals()[name]
    if name in _LAZY_SUBPACKAGES:
        module = importlib.import_module(f"kerastoolkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kerastoolkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBPACKAGES) | set(_LAZY_SUBPACKAGES))
