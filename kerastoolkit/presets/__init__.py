"""Named training recipes, stored as data: `get`, `list`, `load`, `Recipe`."""

from kerastoolkit.presets.recipes import DEFAULT_CONFIG
from kerastoolkit.presets.recipes import DEFAULT_EARLY_STOPPING
from kerastoolkit.presets.recipes import DEFAULT_PLATEAU
from kerastoolkit.presets.recipes import PRESETS
from kerastoolkit.presets.recipes import Preset
from kerastoolkit.presets.recipes import Recipe
from kerastoolkit.presets.recipes import format_list
from kerastoolkit.presets.recipes import get
from kerastoolkit.presets.recipes import list_presets as list  # noqa: A001 (kt.presets.list())
from kerastoolkit.presets.recipes import load
from kerastoolkit.presets.recipes import names
