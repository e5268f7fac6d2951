"""Numbers -> text, in each metric's display unit (accuracy in percent, as Part 3 wrote it)."""

from __future__ import annotations

import math

SCALE = {"accuracy": 100.0}
DIGITS = {"accuracy": 2, "perplexity": 2, "log_loss": 4, "rmse": 4}
NAMES = {"accuracy": "accuracy (%)", "perplexity": "perplexity", "log_loss": "log-loss",
         "rmse": "RMSE"}
DASH = "–"


def finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(metric: str, x: float, signed: bool = False) -> str:
    """A metric value (or a difference, `signed`) in display units, without the unit."""
    if not finite(x):
        return DASH
    digits = DIGITS.get(metric, 4)
    v = float(x) * SCALE.get(metric, 1.0)
    if metric == "perplexity" and abs(v) >= 1000:
        digits = 1
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def unit(metric: str, diff: bool = False) -> str:
    if metric == "accuracy":
        return " pp" if diff else "%"
    return ""


def with_unit(metric: str, x: float, signed: bool = False) -> str:
    text = num(metric, x, signed)
    return text if text == DASH else text + unit(metric, diff=signed)


def diff_size(metric: str, x: float) -> str:
    """The size of a difference (unsigned, in the unit of differences: pp for accuracy)."""
    return DASH if not finite(x) else num(metric, x) + unit(metric, diff=True)


def pm(metric: str, mean: float, half: float, signed: bool = False) -> str:
    """`mean ± half-width of the 95% CI`; a single seed shows the value alone."""
    if not finite(mean):
        return DASH
    if not finite(half):
        return num(metric, mean, signed)
    return f"{num(metric, mean, signed)} ± {num(metric, half)}"


def interval(metric: str, low: float, high: float) -> str:
    if not (finite(low) and finite(high)):
        return DASH
    return f"[{num(metric, low, True)}, {num(metric, high, True)}]"


def pvalue(p: float) -> str:
    if not finite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def count(x: float) -> str:
    """Throughput: thousands separator, no decimals."""
    return f"{x:,.0f}" if finite(x) else DASH


def count_pm(mean: float, half: float) -> str:
    if not finite(mean):
        return DASH
    return f"{mean:,.0f} ± {half:,.0f}" if finite(half) else f"{mean:,.0f}"


def seconds(x: float, half: float = math.nan) -> str:
    if not finite(x):
        return DASH
    return f"{x:.3g} ± {half:.2g}" if finite(half) else f"{x:.3g}"


def ratio(x: float) -> str:
    return f"×{x:.2f}" if finite(x) else DASH


def effect(x: float) -> str:
    if not finite(x):
        return "∞" if x is not None and isinstance(x, float) and math.isinf(x) else DASH
    return f"{x:+.2f}"


def metric_name(metric: str) -> str:
    return NAMES.get(metric, metric)
