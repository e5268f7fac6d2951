"""Keep every entry point offline: MLflow's telemetry is turned off before mlflow is imported.

MLflow 3.17 starts a telemetry client on `import mlflow` (mlflow/__init__.py calls
`mlflow.telemetry.set_telemetry_client()`): it writes an installation id to
~/.config/mlflow/telemetry.json, fetches its config from config.mlflow-telemetry.io (a DNS
lookup on every run) and sends usage records; `mlflow ui` also proxies the browser's UI
telemetry. `mlflow.telemetry.utils.is_telemetry_disabled()` turns all of it off when
MLFLOW_DISABLE_TELEMETRY is true/1 or DO_NOT_TRACK is "true". Importing this module sets both in
os.environ, so they also reach every child process: joblib/loky sweep workers, the benchmark's
workers and the `mlflow ui` server started by experiments/ui.py. The Makefile exports them too.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

OFFLINE_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def apply(environ: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Set the variables that keep MLflow offline in `environ` (default: this process's)."""
    environ.update(OFFLINE_ENV)
    return environ


apply()
