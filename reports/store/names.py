"""How a shared report names the store and its runs: never by an absolute path of the machine
that built it, never with credentials, and runs by their first eight hex digits."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def redact(uri: str) -> str:
    """A tracking URI without credentials (http://user:pass@host -> http://host)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


def store_name(uri: str, repo: Path = REPO) -> str:
    """The store as a reader of the report should see it: never an absolute path of the machine
    that built it (the report is shared). A file store inside the repository is named relative
    to it (`sqlite:///results/mlflow.db`), one elsewhere by its file name only; a server by its
    URL without credentials."""
    uri = redact(uri)
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in ("http", "https"):
        return uri
    if scheme == "sqlite" and uri.startswith("sqlite:///"):
        prefix, path = "sqlite:///", uri.removeprefix("sqlite:///")
    elif scheme in ("file", ""):  # a file store: shown as a plain path
        prefix, path = "", urllib.parse.urlsplit(uri).path if scheme else uri
    else:
        return uri
    if not os.path.isabs(path):
        return uri
    real, root = os.path.realpath(path), os.path.realpath(repo)
    if os.path.commonpath([real, root]) == root:
        return prefix + Path(os.path.relpath(real, root)).as_posix()
    return f"{prefix}<outside the repository>/{Path(path).name}"


def short_id(run_id: str) -> str:
    """A run id as the report shows it: its first eight hex digits (anything else unchanged)."""
    return run_id[:8] if isinstance(run_id, str) and re.fullmatch(r"[0-9a-f]{32}", run_id) \
        else str(run_id)
