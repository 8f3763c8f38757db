"""The importer: MHLW results workbooks (real or synthetic) → the tidy store (:mod:`kofukin.store`).

``ingest_paths`` is what ``kofukin ingest`` runs; ``read_results_workbook`` and ``read_outcome_workbook`` read
and validate one file each. Every failure is collected into one :class:`IngestError` (``.failures`` holds
:class:`Failure` objects with a :class:`Category`).
"""

from kofukin.ingest.errors import Category, Failure, IngestError
from kofukin.ingest.outcome import OutcomeWorkbook, read_outcome_workbook
from kofukin.ingest.pipeline import ingest_paths
from kofukin.ingest.results import ResultsWorkbook, read_results_workbook

__all__ = [
    "Category",
    "Failure",
    "IngestError",
    "OutcomeWorkbook",
    "ResultsWorkbook",
    "ingest_paths",
    "read_outcome_workbook",
    "read_results_workbook",
]
