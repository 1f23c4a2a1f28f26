"""Callbacks for `model.fit`: warmup, plateau decay with schedules, snapshots, diagnostics."""

from kerastoolkit.diagnostics.lr_finder import LRFinder
from kerastoolkit.diagnostics.lr_finder import find_learning_rate
from kerastoolkit.callbacks.momentum import MomentumSchedule
from kerastoolkit.callbacks.plateau import PlateauDecay
from kerastoolkit.callbacks.precise_bn import PreciseBatchNorm
from kerastoolkit.callbacks.precise_bn import recompute_batchnorm_statistics
from kerastoolkit.callbacks.snapshot import SnapshotEnsemble
from kerastoolkit.callbacks.swa import SWA
from kerastoolkit.callbacks.swa import AverageModelCheckpoint
from kerastoolkit.callbacks.time_stopping import TimeStopping
from kerastoolkit.callbacks.warmup import Warmup
from kerastoolkit.diagnostics.callback import CurveDiagnostics
from kerastoolkit.callbacks.preflight import Preflight
from kerastoolkit.callbacks.preflight import PreflightError
from kerastoolkit.callbacks.self_healing import SelfHealing
from kerastoolkit.callbacks.self_healing import SelfHealingError
