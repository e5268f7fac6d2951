"""The values an earlier stage of a study chose for a task's arms, beside the grid they were
chosen from (`reports.store.tuning`): one paragraph and one table in the primary questions, so
the reader sees what the stage-2 arms ran at, why, and by how much the choice won."""

from __future__ import annotations

import pandas as pd

from reports import fmt, markdown

METRIC = "log_loss"  # the rule's metric (experiments/tuned.py): validation log-loss, std


def blocks(grids: pd.DataFrame, task: str) -> list[str]:
    """Nothing for a task none of whose runs took a tuned value; else what was chosen, how, and
    the grid per arm, the choice in bold; a choice at an end of its grid (of three or more
    values), a run that ran at another value than the rule chooses from the store now, or a stage
    the store lacks, is said in bold."""
    mine = grids[grids["task"] == task]
    if mine.empty:
        return []
    found = mine[mine["missing"].isna()]
    stages = ", ".join(f"`{s}`" for s in sorted(mine["stage"].unique()))
    keys = ", ".join(f"`{k}`" for k in sorted(mine["key"].unique()))
    text = (f"**Values chosen by an earlier stage.** {keys} of the arms below was chosen before "
            f"this sweep ran, by the study's tuning stage {stages}, on validation only (the "
            "test set played no part): the value with the lowest mean validation log-loss "
            "(standard evaluation, each run at its selected epoch), a tie to the lower value. "
            "The table gives each value's mean over the stage's completed runs (n runs); the "
            "choice is in bold.")
    for (variant, key), group in found.groupby(["variant", "key"], sort=True):
        chosen = float(group.loc[group["chosen"], "value"].iloc[0])
        grid = sorted(float(v) for v in group["value"])
        if len(grid) > 2 and chosen in (grid[0], grid[-1]):
            end = "lowest" if chosen == grid[0] else "highest"
            text += (f" **{variant}'s {key} = {_value(chosen)} is the grid's {end} value**: the "
                     "grid does not bracket that arm's best value, and a value beyond it may do "
                     "better.")
        ran = group["ran_at"].iloc[0]
        if ran != [chosen]:
            text += (f" **Runs of {variant} ran at {key} = {_values(ran)}, not at the value the "
                     f"rule chooses from this store now ({_value(chosen)})**: the stage "
                     "changed after they started.")
    for _, row in mine[mine["missing"].notna()].iterrows():
        text += (f" **The stage behind {row['variant']}'s {row['key']} is not here:** "
                 f"{row['missing']}")
    if found.empty:
        return [text]
    return [text, markdown.table(_table(found), "Tuned values and their grids")]


def _table(found: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, key): the stage, one column per value of the grid, what the runs ran at."""
    rows = []
    for (variant, key, stage), group in found.groupby(["variant", "key", "stage"], sort=True):
        row = {"variant": variant, "key": key, "stage": stage}
        for _, g in group.iterrows():
            cell = f"{fmt.num(METRIC, g['mean'])} (n {g['runs']})"
            row[f"{key} = {_value(g['value'])}"] = f"**{cell}**" if g["chosen"] else cell
        row["runs here ran at"] = _values(group["ran_at"].iloc[0])
        rows.append(row)
    frame = pd.DataFrame(rows)
    values = [c for c in frame.columns if " = " in c]
    ordered = sorted(values, key=lambda c: float(c.rsplit(" = ", 1)[1]))
    return frame[["variant", "key", "stage", *ordered, "runs here ran at"]].fillna(fmt.DASH)


def _value(value: float) -> str:
    """A config value as one would type it (0.25, not 0.2500)."""
    return f"{float(value):g}"


def _values(values: list[float]) -> str:
    return ", ".join(_value(v) for v in values) or fmt.DASH
