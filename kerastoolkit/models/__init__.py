"""Models: default classifiers for the offline datasets, ensembles, distillation, TTA."""

from kerastoolkit.models.classifiers import default_classifier
from kerastoolkit.models.ensemble import Ensemble
