"""Named training recipes, stored as data."""

from kerastoolkit.presets.recipes import PRESETS
from kerastoolkit.presets.recipes import Preset
from kerastoolkit.presets.recipes import get
from kerastoolkit.presets.recipes import names
