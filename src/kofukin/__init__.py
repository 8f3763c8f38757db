"""kofukin — the incentive-grant analysis book.

All logic lives in this package; notebooks only call it. See README.md for the layout of the project.
"""

import pandas as _pd

# pandas 3 stores strings in Arrow arrays by default; the analysis slices and joins many small tables per report,
# and Arrow's `take` made that ~2× slower than Python-object storage (measured: 3.0 s → 1.5 s per municipality
# report). The values and the `str` dtype are the same either way.
_pd.set_option("mode.string_storage", "python")

__version__ = "0.1.0"
