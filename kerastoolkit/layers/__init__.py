"""Normalization, noise and regularization layers Keras lacks."""

from kerastoolkit.layers.standardize import Standardize
from kerastoolkit.layers.augmentation import MultiCrop
from kerastoolkit.layers.augmentation import RandomGaussianNoise
from kerastoolkit.layers.augmentation import RandomJpegQuality
from kerastoolkit.layers.augmentation import RandomLensDistortion
from kerastoolkit.layers.augmentation import SaltAndPepperNoise
from kerastoolkit.layers.augmentation import TrainingOnly
from kerastoolkit.layers.autoaugment import AutoAugment
