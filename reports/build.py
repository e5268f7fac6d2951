"""`make report` / `python -m reports.build`: the comparison report from an MLflow store alone.

Reads runs and metric histories from the store (never from Hydra folders), writes
`report.md`, the self-contained `report.html` rendered from it and the figures (PNG + SVG) to
the output folder,
and logs them as artifacts (`report/`) of every sweep parent run the report covers, so the
MLflow UI shows the report next to the runs (`--no-log-artifacts` to leave the store alone).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import experiments.offline  # noqa: F401  (MLflow telemetry off before mlflow is imported)
from experiments.tracking_store import (
    DEFAULT_URI_HELP,
    REPO,
    TrackingError,
    default_uri,
    store_errors,
)

if TYPE_CHECKING:
    from reports.report import Built
    from reports.store.load import Filters

DEFAULT_OUT = REPO / "results" / "report"


def _list(values: list[str] | None) -> list[str]:
    """Repeatable, comma-separated options: --variants a,b --variants c -> [a, b, c]."""
    return [v.strip() for group in values or [] for v in group.split(",") if v.strip()]


def parser() -> argparse.ArgumentParser:
    """The command line; every option is documented by `--help`."""
    p = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=None,
                   help=f"MLflow store (default {DEFAULT_URI_HELP})")
    p.add_argument("--experiment", action="append", help="experiment name(s) or id(s); "
                   "default: every experiment of the store")
    p.add_argument("--task", action="append", help="task(s): ptb, imdb, rt")
    p.add_argument("--framework", action="append", help="framework(s): torch, keras")
    p.add_argument("--variants", action="append", help="variant(s), comma-separated")
    p.add_argument("--sweep", help="a sweep_id, or the run id of a sweep's parent run: the "
                   "runs of every launch of that sweep (the parents sharing its sweep_key, or "
                   "linked by superseded_by), named in the report")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    p.add_argument("--compare-on", choices=["std", "mc"], default="std",
                   help="evaluation mode of the paired comparisons (default std)")
    p.add_argument("--family", choices=["task", "question"], default="task",
                   help="Holm family of the automatic comparisons when no sweep declared "
                        "primary ones: every comparison of a task (default), or each "
                        "question; declared primary comparisons are always one family")
    p.add_argument("--title", default="Recurrent dropout: comparison report")
    p.add_argument("--no-log-artifacts", action="store_true",
                   help="do not log the report to the sweeps' parent runs (a read-only store)")
    return p


def main(argv: list[str] | None = None) -> int:
    """The exit status of one build: 0 written, 1 nothing to report, 2 bad input."""
    return run(parser().parse_args(argv))[0]


def run(args: argparse.Namespace) -> tuple[int, Built | None]:
    """Build (and log) the report; returns (exit status, the `report.Built` or None), so tests
    check the numbers behind the very files they read."""
    start = time.perf_counter()
    from reports import report
    from reports.analysis import health
    from reports.store import attach, load

    uri = args.tracking_uri or default_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        print(f"error: no MLflow store at {uri} (run `make sweep` first, or pass "
              "--tracking-uri)", file=sys.stderr)
        return 2, None
    filters = load.Filters(experiments=_list(args.experiment), tasks=_list(args.task),
                           frameworks=_list(args.framework), variants=_list(args.variants),
                           sweep=args.sweep)
    described = _describe(filters)
    try:
        with store_errors(uri):  # a corrupt or unreadable store: one line, not tracebacks
            data = load.load(uri, filters)
    except (load.StoreError, TrackingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
    loaded = time.perf_counter()
    if data.runs.empty:
        print(f"error: no training runs in {uri}" + (f" match {described}" if described else "")
              + "; nothing to report", file=sys.stderr)
        return 1, None
    checked = health.check(data)
    _remove_old_figures(args.out / "figures")
    built = report.build(data, checked, args.out, described, args.compare_on, args.title,
                         args.family)
    md, html = _write(built.markdown, args.out)
    logged = ""
    if not args.no_log_artifacts:
        figs = [p for f in built.figures for p in (f.png, f.svg)]
        try:
            parents = attach.log_report(uri, data.runs, data.parents, [md, html], figs)
            logged = f"\n  logged as artifacts ({attach.ARTIFACT_DIR}/) of {len(parents)} " \
                     f"sweep parent run(s): {', '.join(p[:8] for p in parents) or 'none'}"
        except Exception as e:  # the report is written; a read-only store only loses the copy
            print(f"warning: report not logged to the sweep parent runs: {e}", file=sys.stderr)
    total = time.perf_counter() - start
    print(f"report: {len(data.runs)} runs ({len(checked.usable)} used, {len(checked.flagged)} "
          f"flagged), {len(data.history)} history points; read {loaded - start:.1f} s, "
          f"total {total:.1f} s\n  {md}\n  {html}{logged}")
    return 0, built


def _write(text: str, out: Path) -> tuple[Path, Path]:
    """report.md, then report.html rendered from that same text (its figures under `out`)."""
    from reports import page

    out.mkdir(parents=True, exist_ok=True)
    md, html = out / "report.md", out / "report.html"
    md.write_text(text, encoding="utf-8")
    html.write_text(page.render(text, out), encoding="utf-8")
    return md, html


def _remove_old_figures(folder: Path) -> None:
    """Figures of an earlier report (e.g. of a task now filtered out) must not linger beside
    the new report; only files this tool writes are removed."""
    for prefix in ("forest_", "curves_", "mc_minus_std_", "cost_"):
        for path in folder.glob(f"{prefix}*"):
            if path.suffix in (".png", ".svg"):
                path.unlink()


def _describe(f: Filters) -> str:
    """The filters in one line, as the report names them ("task=imdb sweep=...")."""
    parts = [f"{name}={','.join(v)}" for name, v in (
        ("experiment", f.experiments), ("task", f.tasks), ("framework", f.frameworks),
        ("variants", f.variants)) if v]
    if f.sweep:
        parts.append(f"sweep={f.sweep}")
    return " ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
