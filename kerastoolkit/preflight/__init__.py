"""Preflight: sanity checks before the first epoch (Karpathy's "Recipe").

```python
report = kt.preflight.check(model, (x_train, y_train), batch_size=64)
print(report)          # "healthy, no findings." or each problem with what to do
```
"""

from kerastoolkit.diagnostics import report as _report
from kerastoolkit.preflight.checks import ADVICE
from kerastoolkit.preflight.checks import DEFAULT_THRESHOLDS
from kerastoolkit.preflight.checks import PREFLIGHT_CODES
from kerastoolkit.preflight.checks import PreflightReport
from kerastoolkit.preflight.checks import check

# The preflight codes are finding codes like the curve diagnosis's.
for _code, _severity in PREFLIGHT_CODES.items():
    _report.CODES.setdefault(_code, _severity)
