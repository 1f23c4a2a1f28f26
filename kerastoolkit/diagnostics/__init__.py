"""Learning-curve diagnostics: what the curves mean, in words, and what to try next.

```python
report = kt.diagnostics.diagnose(epochs=history, steps="runs/1/steps.csv")
print(report)            # a short summary, or "healthy, no findings."
report.plot("curves.png")
```
"""

from kerastoolkit.diagnostics.callback import CurveDiagnostics
from kerastoolkit.diagnostics.callback import batch_losses
from kerastoolkit.diagnostics.curves import ADVICE
from kerastoolkit.diagnostics.curves import DEFAULT_THRESHOLDS
from kerastoolkit.diagnostics.curves import diagnose
from kerastoolkit.diagnostics.locate import locate_non_finite
from kerastoolkit.diagnostics.lr_finder import LRFinder
from kerastoolkit.diagnostics.lr_finder import find_learning_rate
from kerastoolkit.diagnostics.plots import plot_history
from kerastoolkit.diagnostics.plots import plot_report
from kerastoolkit.diagnostics.report import CODES
from kerastoolkit.diagnostics.report import Finding
from kerastoolkit.diagnostics.report import Report
from kerastoolkit.diagnostics.statistics import StatisticsRecorder
from kerastoolkit.diagnostics.explain import explain
