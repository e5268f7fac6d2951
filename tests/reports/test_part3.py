"""The report on a store laid out like the part3 sweep (tests/support/part3_store.py): Part 3 beside
us, the primary family and its Holm correction, the minimum detectable difference, the forest plot,
the report logged on the sweeps' parent runs, and the store named without a machine path.

Every expected value is computed from the store (MlflowClient), the sweep files, the published
numbers' data file and scipy, independently of the report's code (tests/support/part3_expect.py).
"""

from __future__ import annotations

import html.parser
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from reports import build as cli
from reports.figures.forest import forest_plot
from reports.store.names import store_name
from tests.support import part3_expect as E
from tests.support import part3_store

# one xdist worker runs this module, so its module-scoped store and report are made once
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("part3")]

REPO = Path(__file__).resolve().parents[2]
METRIC = E.METRIC


@pytest.fixture(scope="module")
def p3(tmp_path_factory):
    root = tmp_path_factory.mktemp("part3")
    store = part3_store.make(root)
    out = root / "out"
    rc, built = cli.run(cli.parser().parse_args(["--tracking-uri", store["uri"], "--out",
                                                  str(out)]))
    assert rc == 0
    md = (out / "report.md").read_text()
    return {**store, "root": root, "out": out, "built": built, "md": md,
            "page": (out / "report.html").read_text()}


def _section(md: str, start: str, end: str) -> str:
    return md[md.index(start):md.index(end)]


def test_early_stopped_runs_with_mc_only_at_the_best_epoch_are_all_used(p3):
    runs = E.search(p3, "tags.preset = 'part3_imdb_torch_naive'")
    for r in runs.values():  # the fixture is what the part3 sweep logs
        assert r.data.metrics["epochs_run"] < int(r.data.params["train.epochs"])
        mc = p3["client"].get_metric_history(r.info.run_id, "valid_accuracy_mc")
        assert [m.step for m in mc] == [int(r.data.metrics["best_epoch"])]
    md = p3["md"]
    assert "All 55 runs finished, are tagged completed and have every metric." in md
    row = next(x for x in md.splitlines()
               if x.startswith("| naive [part3_imdb_torch_naive] | torch | 5 |"))
    ran = [r.data.metrics["epochs_run"] for r in runs.values()]
    assert f"| {np.mean(ran):.1f} ({min(ran):.0f}–{max(ran):.0f}) |" in row


def test_arms_are_the_presets_with_all_five_seeds(p3):
    """A restarted sweep spreads a preset's seeds over two parents, study.* params differ between
    presets, and old runs of one preset carry published.* params the others lack: none of it
    splits or merges arms."""
    s = p3["built"].summaries["imdb"]
    for preset in part3_store.TRUE:
        runs = E.search(p3, f"tags.preset = '{preset}'")
        variant = next(iter(runs.values())).data.tags["variant"]
        row = s[s["label"] == f"{variant} [{preset}]"]
        assert len(row) == 1 and row["n"].iloc[0] == 5, preset
        assert row["accuracy_std_mean"].iloc[0] == pytest.approx(
            np.mean([r.data.metrics[METRIC] for r in runs.values()]), abs=1e-12)
    assert set(s.loc[s["preset"] == "", "label"]) == set(part3_store.GRID)


def test_part3_table_equals_the_data_file_and_scipy(p3):
    """Part 3's numbers come from conf/published.yaml by the runs' preset tag; the stale
    published.* params some runs still carry (part3_store.STALE) are never shown."""
    frame = p3["built"].part3["imdb"]
    ours_acc, theirs_acc = {}, {}
    stale = [r for r in E.search(p3, f"tags.preset = '{part3_store.STALE_PRESET}'").values()
             if "published.setting" in r.data.params]
    assert len(stale) == 3  # the fixture is what old runs logged
    for preset in part3_store.TRUE:
        runs = list(E.search(p3, f"tags.preset = '{preset}'").values())
        entry = E.published(preset)
        expected = entry["numbers"]
        rows = frame[frame["label"].str.endswith(f"[{preset}]")]
        shown = {r.metric + (f"_{r.mode}" if r.mode else ""): r.published
                 for r in rows.itertuples()}
        assert shown == expected, preset
        for r in rows.itertuples():
            mode = r.mode or "std"  # a number of unstated mode is set against our standard
            values = [x.data.metrics[f"test_{r.metric}_{mode}"] for x in runs]
            low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                       scale=sps.sem(values))
            assert (r.ours_mean, r.ours_low, r.ours_high) == (
                pytest.approx(np.mean(values), abs=1e-12), pytest.approx(low, rel=1e-9),
                pytest.approx(high, rel=1e-9))
            # one published run against the prediction interval of one run of ours, written
            # out from its definition: mean ± t(0.975, n-1) · s · sqrt(1 + 1/n)
            n, sd = len(values), np.std(values, ddof=1)
            half = sps.t.ppf(0.975, n - 1) * sd * math.sqrt(1 + 1 / n)
            pi_low, pi_high = np.mean(values) - half, np.mean(values) + half
            assert (r.ours_pi_low, r.ours_pi_high) == (pytest.approx(pi_low, rel=1e-9),
                                                       pytest.approx(pi_high, rel=1e-9))
            assert pi_high - pi_low == pytest.approx((high - low) * math.sqrt(n + 1))
            assert r.position == ("below" if r.published < pi_low else
                                  "above" if r.published > pi_high else "consistent")
            assert (r.setting, r.note, r.source) == (entry["setting"], entry["caveat"],
                                                     entry["source"])
            assert r.select_on == runs[0].data.tags["select_on"] == "log_loss"
        ours_acc[preset] = np.mean([x.data.metrics[METRIC] for x in runs])
        theirs_acc[preset] = E.published_accuracy(preset)
    names = list(part3_store.TRUE)
    their_rank, our_rank = {}, {}
    for framework in ("keras", "torch"):  # ranked within a framework: their settings differ
        mine = [n for n in names if n.startswith(f"part3_imdb_{framework}_")]
        their_rank.update(zip(mine, sps.rankdata([-theirs_acc[n] for n in mine], "min"),
                              strict=True))
        our_rank.update(zip(mine, sps.rankdata([-ours_acc[n] for n in mine], "min"),
                            strict=True))
    for r in frame[frame["metric"] == "accuracy"].itertuples():
        preset = r.label.split("[", 1)[1].rstrip("]")
        assert (r.part3_rank, r.our_rank) == (their_rank[preset], our_rank[preset]), preset
    section = _section(p3["md"], "## 3. Part 3 beside us", "## 4.")
    for preset in part3_store.TRUE:
        line = next(x for x in section.splitlines() if f"[{preset}] |" in x)
        assert f"| {E.published(preset)['setting']} |" in line
        assert "/ validation log-loss |" in line and f"| {their_rank[preset]} / " in line
        for key, value in E.published(preset)["numbers"].items():  # as the reader sees them
            if key.startswith("accuracy"):
                assert f"{value * 100:.2f}" in line, (preset, key)
    note = E.published(part3_store.STALE_PRESET)["caveat"]
    assert section.count(note) == 1 and "epoch picked on the test log-loss" in note
    assert "stale" not in section and part3_store.STALE["published.setting"] not in p3["md"]
    same = sum(their_rank[n] == our_rank[n] for n in names)
    assert f"puts {same} of {len(names)} arms at the same place" in section
    assert "Kendall" not in section and "inside our" not in section


def test_primary_family_is_the_declared_one_and_only_it_is_holm_corrected(p3):
    c = p3["built"].comparisons["imdb"]
    expected = E.expected_primary(p3)
    first = c[c["family"] == "primary"]
    assert list(first["declared"]) == list(expected)  # restarted sweep: declared once
    for r in first.itertuples():
        e = expected[r.declared]
        assert r.n == e["n"]
        if math.isnan(e["p"]):
            assert math.isnan(r.p) and math.isnan(r.p_holm)
            assert r.verdict.startswith("not testable")
            continue
        assert r.p == pytest.approx(e["p"], rel=1e-9)
        assert r.p_holm == pytest.approx(e["p_holm"], rel=1e-9)
        assert r.diff == pytest.approx(e["d"].mean(), abs=1e-12)
    assert any(math.isnan(e["p"]) for e in expected.values())  # the family keeps its size
    rest = c[c["family"] != "primary"]
    assert len(rest) and set(rest["family"]) == {"exploratory"}
    for r in rest.itertuples():
        a, b = (E.label_runs(p3, label) for label in (r.a, r.b))
        x = [a[s].data.metrics[METRIC] for s in sorted(a)]
        y = [b[s].data.metrics[METRIC] for s in sorted(a)]
        assert r.p == pytest.approx(sps.ttest_rel(x, y).pvalue, rel=1e-9)
        assert math.isnan(r.p_holm) and r.verdict.endswith("(uncorrected)")


def test_primary_pairs_list_what_else_differs(p3):
    c = p3["built"].comparisons["imdb"].set_index("declared")
    text = "part3_imdb_torch_weightdrop_variational vs part3_imdb_torch_weightdrop"
    a, b = (next(iter(E.side(p3, s).values())).data.params for s in text.split(" vs "))
    assert a["train.weight_decay"] != b["train.weight_decay"]
    differs = c.loc[text, "differs"]
    assert f"weight_decay {a['train.weight_decay']} vs {b['train.weight_decay']}" in differs
    assert "published" not in " ".join(c["differs"]) and "study" not in " ".join(c["differs"])
    line = next(x for x in _section(p3["md"], "## 2.", "## 3.").splitlines()
                if x.startswith("| weightdrop_variational [") and "weight_decay" in x)
    assert differs in line


def test_minimum_detectable_difference_per_comparison(p3):
    c = p3["built"].comparisons["imdb"]
    expected = E.expected_primary(p3)
    checked = 0
    for r in c[c["family"] == "primary"].itertuples():
        e = expected[r.declared]
        if e["n"] < 2:
            assert math.isnan(r.mde)
            continue
        assert r.mde == pytest.approx(E.mde(np.std(e["d"], ddof=1), e["n"]), rel=1e-6)
        checked += 1
    assert checked >= 8
    section = _section(p3["md"], "## 2.", "## 3.")
    assert "MDE (80% power)" in section


def test_part3_differences_are_judged_by_the_prediction_interval_of_one_paired_difference(p3):
    """Part 3's notebooks state no conclusion: each declared pair is "no stated conclusion" and
    its one-run difference is set against mean ± t · s_d · sqrt(1 + 1/n) of our paired
    differences (scipy, from the store), never given a right/wrong word from its sign."""
    expected = E.expected_primary(p3)
    bullets = [x for x in _section(p3["md"], "## 3.", "## 4.").splitlines()
               if x.startswith("- **")]
    words = set()
    for text in part3_store.part3_primary():
        e = expected[text]
        theirs = (E.published_accuracy(next(iter(e["a"].values())).data.tags["preset"])
                  - E.published_accuracy(next(iter(e["b"].values())).data.tags["preset"]))
        n, d = e["n"], e["d"]
        half = sps.t.ppf(0.975, n - 1) * np.std(d, ddof=1) * math.sqrt(1 + 1 / n)
        low, high = d.mean() - half, d.mean() + half
        word = ("below" if theirs < low else "above" if theirs > high
                else "consistent with one run of ours")
        words.add(word)
        line = next(x for x in bullets if x.startswith(f"- **{text}**:"))
        assert "no stated conclusion" in line and f"published difference {theirs * 100:+.2f} pp" \
            in line and f"**{word}**" in line, line
        assert not any(w in line for w in ("**right**", "**wrong**", "within noise")), line
    assert "consistent with one run of ours" in words


def test_primary_verdicts_are_four_way_with_tost_at_the_declared_margin_and_family_level(p3):
    """Each primary comparison's verdict, recomputed from the store with scipy and statsmodels:
    Holm over the family on the paired t-test (A or B better), else the paired TOST at the
    sweep's declared margin, Holm over the family (equivalent), else undecided; the forest
    plot's interval is the t interval at the family's level alpha / m, and the MDE is stated at
    that level."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_paired

    margins, _ = part3_store.part3_study()
    margin = float(margins["accuracy"])
    c = p3["built"].comparisons["imdb"]
    first = c[c["family"] == "primary"]
    expected = E.expected_primary(p3)
    m = len(first)
    declared = set(part3_store.part3_primary())  # the grid sweep declares no margin
    p_eq = []
    for r in first.itertuples():
        d = expected[r.declared]["d"]
        p_eq.append(ttost_paired(d, np.zeros_like(d), -margin, margin)[0]
                    if len(d) >= 2 and r.declared in declared else 1.0)
    p_eq_holm = multipletests(p_eq, method="holm")[1]
    _, diffs = p3["built"].forest["imdb"]
    words = set()
    for (r, q) in zip(first.itertuples(), p_eq_holm, strict=True):
        e = expected[r.declared]
        if e["n"] < 2:
            continue
        if r.declared not in declared:
            assert math.isnan(r.margin) and (r.verdict.endswith("better") or r.verdict ==
                                             "undecided (no equivalence margin declared)")
            continue
        assert r.p_equiv_holm == pytest.approx(q, rel=1e-9)
        if e["p_holm"] < 0.05:
            word = "better"
            assert r.verdict.endswith(" better") and r.verdict.split()[0] in r.declared
        elif q < 0.05:
            word = "equivalent"
            assert r.verdict == f"equivalent within ±{margin * 100:.2f} pp"
        else:
            word = "undecided"
            assert r.verdict == "undecided"
            assert "What an answer would cost" in r.sentence and "seeds" in r.sentence
        words.add(word)
        low, high = sps.t.interval(1 - 0.05 / m, e["n"] - 1, loc=e["d"].mean(),
                                   scale=sps.sem(e["d"]))
        row = diffs[diffs["name"] == r.declared].iloc[0]
        assert (row.low, row.high) == (pytest.approx(low), pytest.approx(high))
        assert row.margin == pytest.approx(margin)
        assert r.mde_family == pytest.approx(
            E.mde(np.std(e["d"], ddof=1), e["n"], alpha=0.05 / m), rel=1e-6)
    assert {"better", "undecided"} <= words
    section = _section(p3["md"], "## 2.", "## 3.")  # the report says which variance it covers
    assert "pair runs by seed on this one test set" in section
    assert "adds the sampling of the test set itself" in section
    assert "Seeds declared before the first run: 5." in section


def test_answer_lines_print_the_interval_at_the_level_of_their_verdict(p3):
    """Each answer line's interval is the t interval at the family's level 1 - alpha / m,
    recomputed with scipy (not the 95% interval beside a Holm verdict), and an undecided line's
    interval holds 0."""
    answers = p3["md"][p3["md"].index("**Answers**"):p3["md"].index("\n## ")]
    lines = [x for x in answers.splitlines() if x.startswith("- ")]
    expected = E.expected_primary(p3)
    m = len(expected)
    assert len(lines) == m and not any("95% CI" in x for x in lines)
    section = p3["md"][p3["md"].index("## 2."):p3["md"].index("## 3.")]
    header = next(x for x in section.splitlines() if "| A − B [CI at α/m] |" in x)
    at = [c.strip() for c in header.split("|")].index("A − B [CI at α/m]")
    column = [[c.strip() for c in x.split("|")][at] for x in section.splitlines()
              if x.startswith("| ") and x.count("|") == header.count("|")]
    checked = 0
    for name, e in expected.items():
        if e["n"] < 2:
            continue
        line = next(x for x in lines if f"**{name}**" in x)
        low, high = sps.t.interval(1 - 0.05 / m, e["n"] - 1, loc=e["d"].mean(),
                                   scale=sps.sem(e["d"]))
        label = f"family-adjusted {100 * (1 - 0.05 / m):.4g}% CI"
        assert f"{label} [{low * 100:+.2f}, {high * 100:+.2f}]" in line, line
        if "undecided" in line:
            assert low <= 0 <= high
        cell = f"{e['d'].mean() * 100:+.2f} [{low * 100:+.2f}, {high * 100:+.2f}]"
        assert cell in column, (cell, column)
        checked += 1
    assert checked >= 2


def test_prose_only_for_primary_questions_the_rest_in_the_appendix(p3):
    c = p3["built"].comparisons["imdb"]
    section = _section(p3["md"], "## 2. Primary questions", "## 3.")
    bullets = [x for x in section.splitlines() if x.startswith("- ")]
    assert len(bullets) == len(E.declared())
    assert all(any(b.startswith(f"- {t} (") for b in bullets) for t in E.declared())
    rest = c[c["family"] == "exploratory"]
    assert not any(s in p3["md"] for s in rest["sentence"])
    appendix = p3["md"][p3["md"].index("## Appendix A"):]
    assert sum(x.startswith("| exploratory (uncorrected) |") for x in appendix.splitlines()) \
        == len(rest)
    assert sum(x.startswith("| primary |") for x in appendix.splitlines()) == len(E.declared())


def test_forest_plot_shows_every_arm_and_each_primary_difference(p3):
    arms, diffs = p3["built"].forest["imdb"]
    s = p3["built"].summaries["imdb"]
    assert list(arms["name"]) == [f"{r.label} ({r.framework})" for r in s.itertuples()]
    expected = E.expected_primary(p3)
    testable = [t for t, e in expected.items() if e["n"] > 1]
    assert list(diffs["name"]) == testable
    fig = forest_plot(arms, diffs, "accuracy", "std")
    top, bottom = fig.axes[:2]
    assert [t.get_text() for t in top.get_yticklabels()] == list(arms["name"])
    assert [t.get_text() for t in bottom.get_yticklabels()] == testable
    drawn = [ln for ln in bottom.lines if list(ln.get_xdata()) == [0, 0]]
    assert drawn, "no zero line"
    points = np.concatenate([ln.get_xdata() for ln in bottom.lines if ln.get_marker() == "D"])
    assert sorted(points) == pytest.approx(sorted(expected[t]["d"].mean() * 100
                                                  for t in testable))
    m = len(E.declared())  # the family: the interval a reader sees agrees with the verdict
    for t in testable:  # the t interval of the differences at the family's level alpha / m
        d = expected[t]["d"]
        low, high = sps.t.interval(1 - 0.05 / m, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
        row = diffs[diffs["name"] == t].iloc[0]
        assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))
    # each published run is drawn over the 95% prediction interval of one run of ours in the
    # mode it is judged in (its own; standard where unstated; std compared first), written out
    # from its definition
    bands = sorted((b.get_x(), b.get_x() + b.get_width()) for b in top.patches)
    expected_bands = []
    for name in arms.loc[arms["published"].notna(), "name"]:
        preset = name.split("[", 1)[1].split("]", 1)[0]
        numbers = E.published(preset)["numbers"]
        mode = next(m for k, m in (("accuracy_std", "std"), ("accuracy", "std"),
                                   ("accuracy_mc", "mc")) if k in numbers)
        values = [r.data.metrics[f"test_accuracy_{mode}"]
                  for r in E.search(p3, f"tags.preset = '{preset}'").values()]
        half = sps.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) * math.sqrt(
            1 + 1 / len(values))
        expected_bands.append(((np.mean(values) - half) * 100, (np.mean(values) + half) * 100))
    assert len(expected_bands) == 8
    assert np.allclose(bands, sorted(expected_bands), rtol=1e-9, atol=0)
    figs = p3["out"] / "figures"
    assert (figs / "forest_imdb.png").stat().st_size and (figs / "forest_imdb.svg").exists()
    svg = (figs / "forest_imdb.svg").read_text()
    assert all(t in svg for t in testable)
    md = p3["md"]
    assert md.index("forest_imdb.png") < md.index("| variant | framework |") < md.index("## 2.")


def test_report_is_logged_on_every_sweep_parent(p3, tmp_path):
    client = p3["client"]
    for name, parent in p3["parents"].items():
        paths = {a.path for a in client.list_artifacts(parent, "report")}
        assert {"report/report.md", "report/report.html", "report/figures"} <= paths, name
        figures = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(
            parent, "report/figures")}
        assert {"forest_imdb.png", "forest_imdb.svg", "curves_imdb.png"} <= figures
        got = client.download_artifacts(parent, "report/report.md", str(tmp_path / name))
        assert Path(got).read_text() == p3["md"]


def test_store_is_named_relative_to_the_repository_never_by_a_machine_path(p3):
    for text, name in ((p3["md"], "sqlite:///<outside the repository>/mlflow.db"),
                       (p3["page"], "sqlite:///&lt;outside the repository&gt;/mlflow.db")):
        assert str(p3["root"]) not in text and os.path.expanduser("~") + "/" not in text
        assert name in text
    inside = f"sqlite:///{REPO / 'results' / 'mlflow.db'}"
    assert store_name(inside) == "sqlite:///results/mlflow.db"
    assert store_name("http://user:secret@host:5000") == "http://host:5000"


class _Dom(html.parser.HTMLParser):
    """Headings, table header cells and images of a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.headers: list[str] = []
        self.images: list[str] = []
        self.tables: list[int] = []  # each table's right edge in pixels (the probe's)
        self.viewport = 0
        self.first_text = ""  # the first paragraph of the page
        self._paragraphs = 0
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(int(dict(attrs).get("data-right", "0")))
        if tag == "body":
            self.viewport = int(dict(attrs).get("data-viewport", "0"))
        if tag == "p":
            self._paragraphs += 1
        if tag in ("h2", "th"):
            self._in, text = tag, ""
            (self.headings if tag == "h2" else self.headers).append(text)
        if tag == "img":
            self.images.append(dict(attrs).get("data-decoded", "missing"))

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._paragraphs == 1 and len(self.first_text) < 200:
            self.first_text += data
        if self._in == "h2":
            self.headings[-1] += data
        elif self._in == "th":
            self.headers[-1] += data


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_html_in_headless_chromium_shows_sections_part3_table_and_figures(p3, tmp_path):
    """What a reader opening report.html sees: a browser's DOM after loading the page has every
    section heading, the Part 3 table and every figure decoded (a probe script, added to a copy
    of the page, records each image's decoded size)."""
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("chromium is not installed but CI is set: the CI image must provide it")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    probe = tmp_path / "report.html"
    probe.write_text(p3["page"].replace("</body>", (
        "<script>window.addEventListener('load',()=>{for(const i of document.images)"
        "{i.setAttribute('data-decoded',i.complete&&i.naturalWidth>0?"
        "i.naturalWidth+'x'+i.naturalHeight:'broken')}"
        "for(const t of document.querySelectorAll('table'))"
        "{t.setAttribute('data-right',Math.ceil(t.getBoundingClientRect().right))}"
        "document.body.setAttribute('data-viewport',window.innerWidth)});</script></body>")))
    profile = tmp_path / "profile"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
           "--window-size=1300,900",
           probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.headings, proc.stderr[-2000:]
    # a 1300-pixel window shows every table whole (the verdict column included), and the page
    # opens with the answers, not the store and launches (those are provenance)
    assert dom.tables and dom.viewport and all(right <= dom.viewport for right in dom.tables), \
        (dom.viewport, dom.tables)
    assert dom.first_text.startswith("Answers"), dom.first_text
    for heading in ("1. Summary", "2. Primary questions", "3. Part 3 beside us",
                    "4. Learning curves", "8. Run health", "9. Provenance",
                    "Appendix A. All pairwise comparisons"):
        assert heading in dom.headings
    assert "published (test, one run)" in dom.headers
    assert "their run against one run of ours (95% prediction interval)" in dom.headers
    n_figures = len(list((p3["out"] / "figures").glob("*.png")))
    assert len(dom.images) == n_figures
    for size in dom.images:
        width, _, height = size.partition("x")
        assert width.isdigit() and int(width) > 100 and int(height) > 100, size
