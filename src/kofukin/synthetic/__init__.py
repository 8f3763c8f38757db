"""合成データ — the synthetic default panel, written in MHLW's layout (see data/README.md).

``generate_panel(seed)`` builds every table in memory; ``write_demo_data(out_dir, seed)`` writes the workbooks,
the union list and the planted truth (``kofukin demo-data``) and returns the calibration table.
"""

from kofukin.synthetic.calibration import CalibrationReport, calibration_report
from kofukin.synthetic.demo import write_demo_data
from kofukin.synthetic.panel import DEFAULT_SEED, SyntheticPanel, generate_panel

__all__ = [
    "DEFAULT_SEED",
    "CalibrationReport",
    "SyntheticPanel",
    "calibration_report",
    "generate_panel",
    "write_demo_data",
]
