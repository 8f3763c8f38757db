"""kofukin — the incentive-grant analysis book.

All logic lives in this package; notebooks only call it. See README.md for the layout of the project.
"""

__version__ = "0.1.0"
