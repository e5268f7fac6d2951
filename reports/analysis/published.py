"""Published numbers (conf/published.yaml, their one copy) and how our arms match them.

The data file maps an id to a published result: its source, setting, our closest variant and
framework, test (and validation) numbers by metric and evaluation mode, the parameters the
setting fixes and its caveat. Entries with `match: preset` are set beside the runs of their
preset in "Part 3 beside us" (reports/analysis/part3.py, by the runs' `preset` tag); every other
entry becomes one row per (metric, mode) of "Other published numbers"
(reports/sections/published.py), set beside our closest arm.

A published row is "same setting" only when one of our arms has every parameter the paper's
setting fixes and the row has no caveat that no run of this suite can remove (one seed with the
epoch picked on the test set, a different dataset, ...); otherwise the row is shown beside our
closest arm and labelled "different setting", naming what differs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "conf" / "published.yaml"
UNSTATED = "unstated"  # the mode of a number whose source did not say which evaluation it used
MODES = ("std", "mc", UNSTATED)
MATCHES = ("closest", "preset")
FIELDS = {"source", "task", "setting", "variant", "framework", "test", "valid", "mc_passes",
          "requires", "caveat", "note", "preset", "overrides", "match", "in_report",
          "selection", "evidence", "conclusions"}


@dataclass(frozen=True)
class Entry:
    """One published result of the data file. `test`/`valid`: {(metric, mode): value}, mode ''
    when the source did not state it, in the file's order."""

    id: str
    source: str
    task: str
    setting: str
    variant: str
    framework: str | None
    test: dict
    valid: dict = field(default_factory=dict)
    mc_passes: int | None = None
    requires: dict = field(default_factory=dict)
    caveat: str = ""
    note: str = ""
    preset: str = ""
    overrides: tuple[str, ...] = ()
    match: str = "closest"
    in_report: bool = True
    selection: str = ""  # which epoch of how many, picked by what
    evidence: str = ""  # the source's printed line(s) the numbers were read from
    conclusions: tuple[Conclusion, ...] = ()  # what its text states, entry by entry


@dataclass(frozen=True)
class Conclusion:
    """A conclusion the source's text states about this entry against another (`vs`, an entry
    id): its wording (`says`), where it is stated (`where`) and which way it points (`better`:
    this entry is better than `vs`; `worse`; `same`). Never derived from the numbers."""

    vs: str
    says: str
    where: str
    direction: str


DIRECTIONS = ("better", "worse", "same")


@dataclass(frozen=True)
class Published:
    """One row of the "Other published numbers" table: one number of an entry."""

    source: str
    task: str
    setting: str
    variant: str  # our closest variant
    framework: str | None  # None: either of ours
    metric: str
    test: float
    valid: float | None = None
    mode: str = "std"  # std | mc | "" (not stated: compared with our standard evaluation)
    requires: dict = field(default_factory=dict)
    caveat: str = ""
    id: str = ""


class DataError(ValueError):
    """conf/published.yaml is malformed; the message names the entry and the field."""


def _conclusions(entry_id: str, raw: object) -> tuple[Conclusion, ...]:
    if raw is None:
        return ()
    keys = {"vs", "says", "where", "direction"}
    if not isinstance(raw, list) or any(not isinstance(c, dict) or set(c) != keys
                                        or c["direction"] not in DIRECTIONS for c in raw):
        raise DataError(f"{DATA.name}: {entry_id}.conclusions must be a list of mappings with "
                        f"exactly {', '.join(sorted(keys))} (direction one of "
                        f"{', '.join(DIRECTIONS)})")
    return tuple(Conclusion(str(c["vs"]), " ".join(str(c["says"]).split()), str(c["where"]),
                            str(c["direction"])) for c in raw)


def _numbers(entry_id: str, what: str, raw: object) -> dict[tuple[str, str], float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DataError(f"{DATA.name}: {entry_id}.{what} must map metric -> {{mode: value}}")
    out = {}
    for metric, by_mode in raw.items():
        if not isinstance(by_mode, dict) or not by_mode:
            raise DataError(f"{DATA.name}: {entry_id}.{what}.{metric} must map mode -> value")
        for mode, value in by_mode.items():
            if mode not in MODES or not isinstance(value, int | float):
                raise DataError(f"{DATA.name}: {entry_id}.{what}.{metric}.{mode}: the mode must "
                                f"be one of {', '.join(MODES)} and the value a number")
            out[(metric, "" if mode == UNSTATED else mode)] = float(value)
    return out


def parse(raw: dict) -> dict[str, Entry]:
    """The entries of a loaded data file (keys starting with "_" are shared fields, skipped)."""
    out = {}
    for entry_id, e in raw.items():
        if str(entry_id).startswith("_"):
            continue
        if not isinstance(e, dict):
            raise DataError(f"{DATA.name}: {entry_id} is not a mapping")
        unknown = set(e) - FIELDS
        missing = {"source", "task", "setting", "variant", "test"} - set(e)
        if unknown or missing:
            raise DataError(f"{DATA.name}: {entry_id}: " + "; ".join(
                x for x in (f"unknown field(s) {', '.join(sorted(unknown))}" if unknown else "",
                            f"missing {', '.join(sorted(missing))}" if missing else "") if x))
        if e.get("match", "closest") not in MATCHES:
            raise DataError(f"{DATA.name}: {entry_id}.match must be one of {MATCHES}")
        test = _numbers(entry_id, "test", e["test"])
        if not test:
            raise DataError(f"{DATA.name}: {entry_id} has no test number")
        out[entry_id] = Entry(
            id=entry_id, source=e["source"], task=e["task"], setting=e["setting"],
            variant=e["variant"], framework=e.get("framework"), test=test,
            valid=_numbers(entry_id, "valid", e.get("valid")), mc_passes=e.get("mc_passes"),
            requires=dict(e.get("requires") or {}), caveat=" ".join(
                str(e.get("caveat") or "").split()), note=str(e.get("note") or ""),
            selection=" ".join(str(e.get("selection") or "").split()),
            evidence=" ".join(str(e.get("evidence") or "").split()),
            conclusions=_conclusions(entry_id, e.get("conclusions")),
            preset=e.get("preset") or "", overrides=tuple(e.get("overrides") or ()),
            match=e.get("match", "closest"), in_report=bool(e.get("in_report", True)))
    return out


@functools.cache
def entries() -> dict[str, Entry]:
    """Every entry of conf/published.yaml, by id, in the file's order."""
    import yaml

    try:
        raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"the published numbers are missing: {e}") from None
    return parse(raw or {})


def by_preset(preset: str) -> Entry | None:
    """The entry whose numbers the runs of `preset` carry (match: preset), or None."""
    for e in entries().values():
        if e.match == "preset" and e.preset == preset and not e.overrides:
            return e
    return None


def rows_of(e: Entry) -> list[Published]:
    """One row per (metric, mode) of an entry; an MC number of stated passes requires as many."""
    out = []
    for (metric, mode), test in e.test.items():
        requires, setting = e.requires, e.setting
        if mode == "mc" and e.mc_passes:
            requires = {**requires, "train.mc_samples": e.mc_passes}
            setting = f"{setting}, MC ({e.mc_passes} passes)"
        out.append(Published(e.source, e.task, setting, e.variant, e.framework, metric, test,
                             e.valid.get((metric, mode)), mode, requires, e.caveat, e.id))
    return out


def rows() -> list[Published]:
    """The rows of "Other published numbers": every entry matched to our closest arm."""
    return [r for e in entries().values() if e.match == "closest" and e.in_report
            for r in rows_of(e)]


def same(want, have: str | None) -> bool:
    """A logged param (always a string) against a required value, numbers with tolerance."""
    if want is None:
        return have in (None, "None", "null", "")
    if have is None:
        return False
    if isinstance(want, bool):
        return have.lower() == str(want).lower()
    if isinstance(want, int | float):
        try:
            return math.isclose(float(have), float(want), rel_tol=1e-3)
        except ValueError:
            return False
    return str(want) == have


def effective(key: str, have: str | None, task: str) -> str | None:
    """A logged null that the config resolves later (model.num_layers: 2 for the language
    model, 1 for classifiers), so it is compared as what the run actually used."""
    if key == "model.num_layers" and have in (None, "None", "null"):
        return "2" if task == "ptb" else "1"
    return have


def mismatches(row: Published, setting: dict[str, str]) -> list[str]:
    """`key ours≠theirs` for every required parameter our arm does not share."""
    out = []
    for key, want in row.requires.items():
        have = effective(key, setting.get(key), row.task)
        if not same(want, have):
            theirs = f"{want:.4g}" if isinstance(want, float) else str(want)
            out.append(f"{key.rsplit('.', 1)[-1]} {have}≠{theirs}")
    return out


def for_task(task: str) -> list[Published]:
    return [r for r in rows() if r.task == task]
