"""Unit tests of the report's reductions and rendering on hand-made inputs: per-run cost and
baselines, the store filter, number formatting, the Markdown and the self-contained page."""

from __future__ import annotations

import base64
import math

import pandas as pd
import pytest

from reports import fmt, markdown, page
from reports.analysis import tables
from reports.store.load import Filters, _filter_string


def test_per_run_cost_leaves_out_the_first_epoch():
    runs = pd.DataFrame([{"run_id": "r", "arm": "a", "label": "naive", "task": "rt",
                          "framework": "torch", "variant": "naive", "seed": 0,
                          "metrics": {"best_epoch": 2.0, "test_accuracy_std": 0.8,
                                      "test_accuracy_mc": 0.82}}])
    hist = pd.DataFrame(
        [("r", "train_tokens_per_s", s, v, 0) for s, v in ((1, 10.0), (2, 100.0), (3, 120.0),
                                                          (4, 90.0))]
        + [("r", "valid_accuracy_std", s, v, 0) for s, v in ((1, 0.5), (2, 0.6))]
        + [("r", "valid_accuracy_mc", s, v, 0) for s, v in ((1, 0.5), (2, 0.7))],
        columns=["run_id", "key", "step", "value", "timestamp"])
    per = tables.per_run(runs, hist).iloc[0]
    assert per["train_tokens_per_s"] == 100.0
    assert per["test_accuracy_diff"] == pytest.approx(0.02)
    assert per["valid_accuracy_diff"] == pytest.approx(0.05)
    assert per["valid_accuracy_mc_better"] == 0.5 and per["valid_accuracy_mc_worse"] == 0.0


def test_baseline_is_the_closest_none_arm():
    mine = {"model.hidden_size": "64", "dropout.input": "0.25"}
    cands = [("small", {"model.hidden_size": "16"}), ("same", {"model.hidden_size": "64"})]
    assert tables.baseline_arm(mine, cands) == "same"
    assert tables.baseline_arm(mine, []) is None


def test_filter_string_pushes_single_values_and_quotes():
    assert _filter_string(Filters(tasks=["rt"])) == "tags.task = 'rt'"
    assert _filter_string(Filters(tasks=["rt", "ptb"], frameworks=["o'k"])) == \
        "tags.framework = 'o\\'k'"


def test_formatting():
    assert fmt.pm("accuracy", 0.84625, 0.0031) == "84.62 ± 0.31" or \
        fmt.pm("accuracy", 0.84625, 0.0031) == "84.63 ± 0.31"
    assert fmt.pm("perplexity", 82.71, math.nan) == "82.71"
    assert fmt.num("accuracy", -0.012, signed=True) == "-1.20"
    assert fmt.with_unit("accuracy", 0.01, signed=True) == "+1.00 pp"
    assert fmt.pvalue(0.0001) == "<0.001" and fmt.pvalue(math.nan) == fmt.DASH
    assert fmt.num("perplexity", 1234.56) == "1234.6"


def test_render_escapes_and_inlines(tmp_path):
    """The page is rendered from the Markdown: escaped cells and text, bold and code inline,
    heading ids for links, a text table's class, and no markup from the text."""
    md = markdown.document("T <x>", [
        markdown.heading("1. A b"), "**bold** and `code` <script>",
        markdown.table(pd.DataFrame({"a|b": ["x|y"]}), "cap", text=True)])
    html = page.render(md, tmp_path)
    assert "| a\\|b |" in md and "| x\\|y |" in md
    assert "<b>bold</b>" in html and "<code>code</code>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'id="1-a-b"' in html and 'class="wide"' in html


def test_page_inlines_figures_and_lists_the_sections(tmp_path):
    """The page's title and table of contents come from the Markdown's headings, an image beside
    the Markdown is inlined, and a table of numbers keeps plain cells."""
    figure = tmp_path / "figures" / "f.png"
    figure.parent.mkdir()
    figure.write_bytes(b"\x89PNG not really")
    md = markdown.document("T", [markdown.heading("1. One"), "![a figure](figures/f.png)",
                                 markdown.heading("one task", 3),
                                 markdown.table(pd.DataFrame({"n": ["1"]}))])
    html = page.render(md, tmp_path)
    data = base64.b64encode(figure.read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{data}"' in html and "figures/f.png" not in html
    assert '<li><a href="#1-one">1. One</a></li>' in html and 'href="#one-task"' not in html
    assert html.count("<h1>T</h1>") == 1 and 'id="one-task"' in html
    assert "<table>" in html and "<td>1</td>" in html


def test_sections_are_numbered_by_their_place_in_the_one_list():
    from reports import sections

    assert sections.headings() == [
        None, "1. Summary", "2. Primary questions", "3. Part 3 beside us",
        "4. Learning curves", "5. MC dropout minus standard evaluation", "6. Cost",
        "7. Other published numbers", "8. Run health", "9. Provenance",
        "Appendix A. All pairwise comparisons"]
    order = (("front", sections.answers.SECTION), ("body", sections.health.SECTION),
             ("appendix", sections.appendix.SECTION), ("appendix", sections.cost.SECTION))
    assert sections.headings(order) == [None, "1. Run health",
                                        "Appendix A. All pairwise comparisons",
                                        "Appendix B. Cost"]
