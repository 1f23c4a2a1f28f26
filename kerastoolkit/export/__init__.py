"""SavedModel export for serving (TensorFlow Serving's versioned layout).

`saved_model` writes `<directory>/<version>/` with a `serving_default`
signature of stable names (input `inputs`; outputs `probabilities`,
`top_k_indices`, `top_k_scores`, `top_k_class_names`), preprocessing inside
the graph, a metadata asset and TensorFlow Serving warmup requests; `load`
reloads it for Python; `export_keras_file` exports a saved `.keras` model. A
model that outputs logits is served with the softmax in the graph
(`OutputKindError` when that cannot be told: pass `outputs=`).
"""

from kerastoolkit.export.saved_model import INPUT_NAME
from kerastoolkit.export.saved_model import METADATA_FILE
from kerastoolkit.export.saved_model import OUTPUT_NAMES
from kerastoolkit.export.saved_model import SIGNATURE
from kerastoolkit.export.saved_model import WARMUP_FILE
from kerastoolkit.export.saved_model import ServedModel
from kerastoolkit.export.saved_model import export_keras_file
from kerastoolkit.export.saved_model import load
from kerastoolkit.export.saved_model import next_version
from kerastoolkit.export.saved_model import saved_model
from kerastoolkit.export.saved_model import versions
from kerastoolkit.presets._output_kind import OutputKindError
