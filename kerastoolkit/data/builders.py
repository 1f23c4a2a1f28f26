"""tensorflow-datasets builders for the offline datasets.

Each builder generates its examples from `kerastoolkit.data.sources`, so
`download_and_prepare` never downloads. Once prepared into a data dir,
`tfds.load("kt_digits", data_dir=..., download=False)` works like any TFDS
dataset (importing `kerastoolkit.data` registers the builders).
"""

import numpy as np
import tensorflow_datasets as tfds

from kerastoolkit.data import sources


class _OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared generation code: one `{"x", "label"}` example per array row."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    _source = None  # the `sources` function returning {"train": (x, y), ...}
    _x_feature = None
    _description = ""
    _homepage = ""
    _citation = ""

    def _info(self):
        return self.dataset_info_from_configs(
            description=self._description,
            features=tfds.features.FeaturesDict(
                {
                    "x": self._x_feature,
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("x", "label"),
            homepage=self._homepage,
            citation=self._citation,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        arrays = type(self)._source()
        return {split: self._generate_examples(x, y) for split, (x, y) in arrays.items()}

    def _generate_examples(self, x, y):
        for i in range(len(y)):
            yield i, {"x": x[i], "label": int(y[i])}


class KtDigits(_OfflineBuilder):
    """scikit-learn's 8×8 digits (uint8 in [0, 16]), fixed stratified split."""

    _source = staticmethod(sources.digits)
    _x_feature = tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8)
    _description = "scikit-learn load_digits: 1,797 8x8 handwritten digits, 1,437 train / 360 test."
    _homepage = "https://archive.ics.uci.edu/dataset/80"


class KtFashionMnist(_OfflineBuilder):
    """Fashion-MNIST from the Debian package's idx files."""

    _source = staticmethod(sources.fashion_mnist)
    _x_feature = tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8)
    _description = "Fashion-MNIST (Xiao et al. 2017) from /usr/share/datasets/fashion-mnist."
    _homepage = "https://github.com/zalandoresearch/fashion-mnist"
    _citation = "Xiao, Rasul, Vollgraf. Fashion-MNIST. arXiv:1708.07747, 2017."


class KtMnist1d(_OfflineBuilder):
    """mnist1d generated with `make_dataset(get_dataset_args())`."""

    _source = staticmethod(sources.mnist1d)
    _x_feature = tfds.features.Tensor(shape=(40,), dtype=np.float32)
    _description = "mnist1d (Greydanus 2020), generated from code: 4,000 train / 1,000 test."
    _homepage = "https://github.com/greydanus/mnist1d"
    _citation = "Greydanus. Scaling down deep learning. arXiv:2011.14439, 2020."
