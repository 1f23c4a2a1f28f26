"""Normalization, noise and regularization layers Keras lacks."""

from kerastoolkit.layers.instance_normalization import InstanceNormalization
from kerastoolkit.layers.ghost_batch_normalization import GhostBatchNormalization
from kerastoolkit.layers.filter_response_normalization import FilterResponseNormalization, TLU
from kerastoolkit.layers.weight_normalization import WeightNormalization
from kerastoolkit.layers.weight_normalization import remove_weight_normalization
from kerastoolkit.layers.weight_noise import WeightNoise
from kerastoolkit.layers.drop_connect import DropConnect
from kerastoolkit.layers.stochastic_depth import StochasticDepth
from kerastoolkit.layers.standardize import Standardize
from kerastoolkit.layers.augmentation import AugmentationPolicy
from kerastoolkit.layers.augmentation import MultiCrop
from kerastoolkit.layers.augmentation import RandomGaussianNoise
from kerastoolkit.layers.augmentation import RandomJpegQuality
from kerastoolkit.layers.augmentation import RandomLensDistortion
from kerastoolkit.layers.augmentation import RandomShear
from kerastoolkit.layers.augmentation import SaltAndPepperNoise
from kerastoolkit.layers.augmentation import TrainingOnly
from kerastoolkit.layers.autoaugment import AutoAugment
