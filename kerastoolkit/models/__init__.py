"""Models: default classifiers for the offline datasets, ensembles, distillation, TTA."""

from kerastoolkit.models.classifiers import default_classifier
from kerastoolkit.models.ensemble import Ensemble
from kerastoolkit.models.distiller import DistillationLoss
from kerastoolkit.models.distiller import Distiller
from kerastoolkit.models.distiller import soft_targets
from kerastoolkit.models.tta import TTAPredictor
from kerastoolkit.models.tta import dense_evaluation
from kerastoolkit.models import transfer
from kerastoolkit.models.lwf import LearningWithoutForgetting
from kerastoolkit.models.lwf import learning_without_forgetting
