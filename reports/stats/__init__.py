"""The report's statistics, pure functions of numbers (no pandas, no store): intervals over
seeds (`intervals`), tests of a difference (`significance`), the power of a design (`power`) and
the interval over seeds and test examples together (`examples`).

Well-kept libraries do the statistics where they have them: scipy.stats (t quantiles, the paired
t-test) and statsmodels (Holm via `multipletests`, the paired TOST `ttost_paired`, the power of
the paired t-test `TTestPower`). The tests compare every number with those libraries on
synthetic data whose answer is known. The names below are the package's interface: the rest of
the report imports them from here.
"""

from reports.stats.examples import example_differences, seeds_and_examples
from reports.stats.intervals import CONFIDENCE, MeanCI, mean_ci, predict_one, prediction_bounds
from reports.stats.power import (
    MAX_SEEDS,
    POWER,
    detectable_effect,
    equivalence_power,
    minimum_detectable,
    paired_power,
    seeds_for_equivalence,
    seeds_to_detect,
)
from reports.stats.significance import ALPHA, Paired, equivalence_p, family_alpha, holm, paired

__all__ = [
    "ALPHA", "CONFIDENCE", "MAX_SEEDS", "POWER", "MeanCI", "Paired", "detectable_effect",
    "equivalence_p", "equivalence_power", "example_differences", "family_alpha", "holm",
    "mean_ci", "minimum_detectable", "paired", "paired_power", "predict_one",
    "prediction_bounds", "seeds_and_examples", "seeds_for_equivalence", "seeds_to_detect",
]
