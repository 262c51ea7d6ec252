"""Runs tracked in MLflow (``train.track: mlflow``, the optional extra ``flexseg[track]``).

A training logs the resolved experiment as parameters, each epoch's losses, metrics, learning
rate and seconds, and at the end the model card; ``evaluate`` adds the test scores and the report
to the same MLflow run. Each fold of a cross-validation is a child run of the cross-validation's.

Where: ``train.track_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite store ``mlflow.db``
(artifacts in ``mlartifacts/``) in the folder that holds the run folder, so the runs of a
project (``runs/nbm``, ``runs/knee``) share one store: ``mlflow ui --backend-store-uri
sqlite:///runs/mlflow.db``. The run folder records which MLflow run is its own
(``tracking.json``).

A tracker never fails a training: the first error (a server down, a full disk) is one warning,
and the run goes on untracked. HTTP requests are not retried and time out after 10 s unless
``$MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``$MLFLOW_HTTP_REQUEST_TIMEOUT`` say otherwise.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import console as out
from flexseg.errors import ConfigError
from flexseg.fsutil import atomic_write_text
from flexseg.schema import Record, to_json

if TYPE_CHECKING:
    from flexseg.config import Experiment

TRACKING_FILE = "tracking.json"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


class TrackedRun(Record):
    """``tracking.json`` in a run folder: the MLflow run that is its own."""

    uri: str
    run_id: str


def require_tracker(exp: Experiment) -> None:
    """Before a training starts: ``track: mlflow`` needs MLflow installed."""
    import importlib.util

    if exp.train.track == "mlflow" and importlib.util.find_spec("mlflow") is None:
        raise ConfigError(
            "train.track: mlflow needs MLflow: pip install 'flexseg[track]' (or pip install mlflow), "
            "or set train.track: none"
        )


def tracking_uri(exp: Experiment, run_dir: Path) -> str:
    """``train.track_uri``, ``$MLFLOW_TRACKING_URI``, or SQLite beside the run folder."""
    from flexseg.settings import mlflow_tracking_uri

    return exp.train.track_uri or mlflow_tracking_uri() or f"sqlite:///{run_dir.parent.resolve() / STORE_FILE}"


def _flatten(value: object, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(value) if isinstance(value, list | tuple) else str(value)}


@dataclass
class Tracker:
    """One MLflow run, written through ``MlflowClient`` (no global active run). Every method
    swallows errors after the first warning: tracking never stops a training or an evaluation."""

    uri: str
    run_id: str | None = None
    failed: bool = False
    _client: object = None  # the MlflowClient, made on first use

    def _call(self, what: str, fn: object, *args: object, **kwargs: object) -> object:
        if self.failed:
            return None
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 (any tracker failure: warn once, go on)
            self.failed = True
            reason = str(e).splitlines()[0][:200] if str(e) else ""
            out.warn(f"tracking: {what} at {self.uri} failed ({type(e).__name__}: {reason}); going on without tracking")
            return None

    @property
    def client(self) -> object:
        """The run's MlflowClient, made once (call it inside ``_call``: making it may fail too)."""
        if self._client is None:
            from flexseg.settings import quiet_mlflow_http

            quiet_mlflow_http()
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    @classmethod
    def start(
        cls, exp: Experiment, run_dir: Path, write_dir: Path, *, parent: TrackedRun | None = None, resume: bool = False
    ) -> Tracker | None:
        """The MLflow run of a training into ``write_dir`` (None when the experiment tracks
        nothing): started, with the experiment as parameters, and recorded in
        ``write_dir/tracking.json``; a resumed training goes on with the run it recorded."""
        if exp.train.track != "mlflow":
            return None
        earlier = read_tracked(write_dir) if resume else None
        tracker = cls(parent.uri if parent else earlier.uri if earlier else tracking_uri(exp, run_dir))
        tracker._call("starting a run", tracker._start, exp, run_dir, write_dir, parent, earlier)
        return tracker

    def _start(
        self, exp: Experiment, run_dir: Path, write_dir: Path, parent: TrackedRun | None, earlier: TrackedRun | None
    ) -> None:
        from mlflow.entities import Param, RunStatus

        from flexseg.config import experiment_dict

        client = self.client
        if earlier is not None:
            self.run_id = earlier.run_id
            client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return
        name = exp.name
        found = client.get_experiment_by_name(name)
        if found is None:
            artifacts = None
            if self.uri.startswith("sqlite:///"):
                artifacts = (Path(self.uri.removeprefix("sqlite:///")).parent / ARTIFACTS_DIR).as_uri()
            experiment_id = client.create_experiment(name, artifact_location=artifacts)
        else:
            experiment_id = found.experiment_id
        tags = {"flexseg.run_dir": str(run_dir)}
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.run_id
        run = client.create_run(experiment_id, run_name=run_dir.name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, v[:6000]) for k, v in _flatten(experiment_dict(exp)).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            client.log_batch(self.run_id, params=params[i : i + 100])
        atomic_write_text(write_dir / TRACKING_FILE, to_json(TrackedRun(uri=self.uri, run_id=self.run_id)))

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        """Metrics (non-finite values are left out), at ``step`` (an epoch) or step 0."""
        import math

        if self.run_id is None or self.failed:
            return

        def send() -> None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [
                Metric(k, float(v), now, step or 0)
                for k, v in values.items()
                if isinstance(v, int | float) and math.isfinite(float(v))
            ]
            if metrics:
                self.client.log_batch(self.run_id, metrics=metrics)

        self._call("logging metrics", send)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        """A file or a folder's files as artifacts of the run."""
        if self.run_id is None or self.failed or not path.exists():
            return
        if path.is_dir():
            self._call("storing artifacts", lambda: self.client.log_artifacts(self.run_id, str(path), folder))
        else:
            self._call("storing an artifact", lambda: self.client.log_artifact(self.run_id, str(path), folder))

    def end(self, status: str) -> None:
        """``FINISHED``, ``FAILED`` or ``KILLED``."""
        if self.run_id is not None and not self.failed:
            self._call("ending the run", lambda: self.client.set_terminated(self.run_id, status))


def read_tracked(folder: Path) -> TrackedRun | None:
    """The MLflow run a run folder recorded, or None (none recorded, or a damaged record: warned)."""
    from flexseg.errors import RunError
    from flexseg.schema import read_json

    try:
        return read_json(
            folder / TRACKING_FILE, TrackedRun, what="flexseg tracking record", fix="it is left alone", error=RunError
        )
    except FileNotFoundError:
        return None
    except RunError as e:
        out.warn(f"tracking: {e}")
        return None


def log_evaluation(run_dir: Path, scores: dict[str, float | None], files: list[Path]) -> None:
    """After ``evaluate``: the test scores and the report into the run folder's MLflow run, if it has one."""
    import importlib.util

    tracked = read_tracked(run_dir)
    if tracked is None:
        return
    if importlib.util.find_spec("mlflow") is None:
        out.warn(f"tracking: {run_dir} is tracked in MLflow but MLflow is not installed; the scores are not logged")
        return
    tracker = Tracker(tracked.uri, tracked.run_id)
    tracker.log({f"test_{k}": v for k, v in scores.items() if v is not None})
    for path in files:
        tracker.artifact(path, "report" if path.is_dir() else None)
