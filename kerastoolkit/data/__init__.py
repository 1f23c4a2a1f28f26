"""Offline datasets (TFDS builders), loading and preprocessing.

Nothing here downloads: digits ships inside scikit-learn, Fashion-MNIST comes
from the Debian package `dataset-fashion-mnist`, mnist1d is generated.
"""

from kerastoolkit.data.builders import KtDigits
from kerastoolkit.data.builders import KtFashionMnist
from kerastoolkit.data.builders import KtMnist1d
from kerastoolkit.data.datasets import DATASETS
from kerastoolkit.data.datasets import DatasetInfo
from kerastoolkit.data.datasets import default_data_dir
from kerastoolkit.data.datasets import info
from kerastoolkit.data.datasets import load
from kerastoolkit.data.datasets import prepare
from kerastoolkit.data.augmentation import augment_dataset
from kerastoolkit.data.augmentation import augmentation
from kerastoolkit.data.augmentation import augmentation_for
