"""Bad input is said once, in one line, with exit code 2 (a usage error, as argparse exits):
a traceback above the message only hides it, and is kept for what is a bug.

`one_line` also flattens Hydra's multi-line composition errors (the value that did not fit,
the options or keys that would) so that the key, the value and what is allowed stay together.
"""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

# Lines of Hydra/OmegaConf messages that say nothing to the user (or advise adding the typo).
_NOISE = ("full_key:", "reference_type=", "object_type=", "To append to your config use")
# OmegaConf's wrapping of an error raised by a resolver (a study's `${tuned:...}`): the error's
# own message names the key, the value and what to do
_RESOLVER = re.compile(r"\b\w+ raised while resolving interpolation: ")


class Refused(ValueError):
    """Bad input found before anything ran; the message already names key, value and job."""


def refuse(error: BaseException) -> NoReturn:
    """Print why in one line on stderr and exit 2. SystemExit passes through Hydra's job
    runner untouched, which would otherwise print its own line and re-raise."""
    print(f"refused: {one_line(error)}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def one_line(error: BaseException) -> str:
    """The message of `error`, with an OmegaConf cause Hydra wraps (the type that did not fit)
    and, for an unknown key, the keys allowed there."""
    parts = [_flatten(str(error))]
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        parts.append(_flatten(str(cause)))
    kept: list[str] = []
    for part in (_RESOLVER.sub("", p).rstrip(". ") for p in parts):
        if part and not any(part in k for k in kept):  # a cause that repeats the message
            kept.append(part)
    text = ": ".join(kept)
    if isinstance(cause, ConfigAttributeError | ConfigKeyError):
        keys = _allowed_keys(getattr(cause, "full_key", None) or "")
        text += f"; allowed keys: {keys}" if keys else ""
    return text


def _flatten(text: str) -> str:
    """Hydra's indented lists ("Available options in 'variant':" then one per line) become
    comma-separated; its config search path and OmegaConf's node metadata are dropped."""
    out: list[str] = []
    listing = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(_NOISE):
            continue
        if listing and raw[:1].isspace():
            out[-1] += (" " if out[-1].endswith(":") else ", ") + line
            continue
        listing = line.endswith(":")
        out.append(line)
    return "; ".join(line.rstrip(".") for line in out)


def _allowed_keys(full_key: str) -> str:
    from experiments.config import Config

    parent = full_key.rpartition(".")[0]
    schema = OmegaConf.structured(Config)
    node = OmegaConf.select(schema, parent) if parent else schema
    return ", ".join(str(k) for k in node) if isinstance(node, DictConfig) else ""
