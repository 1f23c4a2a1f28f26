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
"""

import importlib

from kerastoolkit import callbacks
from kerastoolkit import diagnostics
from kerastoolkit import initializers
from kerastoolkit import layers
from kerastoolkit import losses
from kerastoolkit import models
from kerastoolkit import optimizers
from kerastoolkit import presets
from kerastoolkit import schedules

__version__ = "0.1.0"

_LAZY_SUBPACKAGES = ("data", "export", "distribute")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        module = importlib.import_module(f"kerastoolkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kerastoolkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_SUBPACKAGES))
