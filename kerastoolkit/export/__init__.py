"""SavedModel export for serving (TensorFlow Serving's versioned layout)."""

from kerastoolkit.export.saved_model import ServedModel
from kerastoolkit.export.saved_model import load
from kerastoolkit.export.saved_model import next_version
from kerastoolkit.export.saved_model import saved_model
from kerastoolkit.export.saved_model import versions
