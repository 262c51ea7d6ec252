"""The run report: report.html in the run folder, with its pictures in report/ beside it.

``flexseg evaluate`` writes it with the pictures of the cases it scored (``CaseGallery``);
``flexseg report RUN`` writes the page again from the files in the run folder (after a
training, or to refresh it), keeping the pictures evaluate drew. See page.py for what it shows.
"""

from __future__ import annotations

from pathlib import Path

from flexseg.report.cases import REPORT_ASSETS, CaseGallery
from flexseg.report.page import REPORT_FILE, RunFacts, render

__all__ = ["REPORT_ASSETS", "REPORT_FILE", "CaseGallery", "publish", "write_page"]


def publish(handle: object, gallery: CaseGallery) -> Path:
    """Within an open run folder (``runs.open_output``'s ``handle``, evaluate's), the gallery's
    pictures and a new report.html, put in place together: the old report stays whole until the
    new one is (``runs.staged`` and ``runs.promote``). Returns report.html's path."""
    from flexseg import runs
    from flexseg.fsutil import atomic_write_text

    with runs.staged(handle) as staging:
        index = gallery.write(staging / REPORT_ASSETS)
        atomic_write_text(staging / REPORT_FILE, render(RunFacts.read(handle.folder, cases=index)))
        runs.promote(handle, replace={REPORT_ASSETS, REPORT_FILE})
    return handle.folder / REPORT_FILE


def write_page(run_dir: Path) -> Path:
    """report.html of ``run_dir`` from its files (the pictures evaluate drew are kept), under the
    run folder's lock. Returns its path.

    Raises:
        RunError: not a run folder (no model.json, nor folds of one), or another flexseg process
            holds it, or a report.html there was not written by flexseg.
    """
    from flexseg import runs
    from flexseg.errors import RunError
    from flexseg.fsutil import atomic_write_text
    from flexseg.model.store import CARD_FILE, is_cross_validation

    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder; give the folder `flexseg train` wrote (run_dir)")
    if not (run_dir / CARD_FILE).is_file() and not is_cross_validation(run_dir):
        raise RunError(f"{run_dir}: not a run folder (no {CARD_FILE}); give a folder `flexseg train` wrote")
    with runs.open_output(run_dir, "report", legacy_names=runs.RUN_LEGACY_NAMES):
        atomic_write_text(run_dir / REPORT_FILE, render(RunFacts.read(run_dir)))
    return run_dir / REPORT_FILE
