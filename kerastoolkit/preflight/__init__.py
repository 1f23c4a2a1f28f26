"""Preflight: sanity checks before the first epoch (Karpathy's "Recipe").

```python
report = kt.preflight.check(model, (x_train, y_train), batch_size=64)
print(report)          # "healthy, no findings." or each problem with what to do
```
"""

from kerastoolkit.preflight.checks import DEFAULT_THRESHOLDS
from kerastoolkit.preflight.checks import PreflightReport
from kerastoolkit.preflight.checks import check
from kerastoolkit.preflight.codes import ADVICE
from kerastoolkit.preflight.codes import PREFLIGHT_CODES
