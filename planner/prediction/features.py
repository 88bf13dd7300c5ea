"""Text features of a math problem, computed for a whole batch at once with numpy.

Two hashed n-gram blocks (byte n-grams, and word/LaTeX-token uni- and bigrams) plus a few structure
counts. Hashing keeps the model small (no vocabulary is stored) and the batch path vectorised: planning
100,000 problems must not wait on a Python loop per n-gram.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse

_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SEPARATOR = 0

_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A"):ord("Z") + 1] += 32
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True
_SPACE[_SEPARATOR] = True
_WORD = np.zeros(256, dtype=bool)
_WORD[ord("a"):ord("z") + 1] = True
_WORD[ord("0"):ord("9") + 1] = True
_WORD[0x80:] = True
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0"):ord("9") + 1] = True

STRUCTURE_NAMES = (
    "chars", "tokens", "dollars", "backslashes", "digits", "numbers", "longest_number", "lines",
    "questions", "carets", "equals", "braces", "commas", "fracs", "sqrts", "diagrams", "sums",
    "dfracs_or_binoms", "pi", "express", "percent",
)
_SUBSTRINGS = ("\\frac", "\\sqrt", "[asy]", "\\sum", None, "\\pi", "express", "%")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that changes the feature space; stored in every model file."""

    char_ngrams: tuple[int, int] = (2, 4)
    word_ngrams: tuple[int, int] = (1, 2)
    char_bits: int = 18
    word_bits: int = 18

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class HashedBlock:
    """Hashed n-gram occurrences of a batch, one bucket array per n, all aligned to one position axis.

    Documents own contiguous position ranges starting at `starts`, so per-document sums are segment
    sums. Windows that are not real n-grams (across a text boundary, or padding) hold the reserved
    bucket `n_buckets`, which every weight vector maps to zero.
    """

    levels: list[np.ndarray]
    starts: np.ndarray
    n_buckets: int

    @property
    def n_docs(self) -> int:
        return len(self.starts)

    def sums(self, weights: np.ndarray) -> np.ndarray:
        """Per document, the sum of `weights[bucket]` over its occurrences. `weights` has n_buckets + 1 rows
        (one vector, or one column per weight vector: all are summed in one pass over the occurrences)."""
        total = np.zeros((self.n_docs, *weights.shape[1:]))
        if self.n_docs == 0:
            return total
        empty = np.diff(self.starts, append=len(self.levels[0])) == 0
        for buckets in self.levels:
            total += np.add.reduceat(weights[buckets], self.starts, axis=0)
        total[empty] = 0.0
        return total

    def occurrences(self, column_of_bucket: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document, column) of every occurrence whose bucket `column_of_bucket` (sized n_buckets + 1)
        maps to a column >= 0."""
        docs, columns = [], []
        for level in self.levels:
            column = column_of_bucket[level]
            positions = np.flatnonzero(column >= 0)
            docs.append(np.searchsorted(self.starts, positions, side="right") - 1)
            columns.append(column[positions])
        return np.concatenate(docs), np.concatenate(columns)

    def counts(self) -> sparse.csr_matrix:
        """Document x bucket occurrence counts."""
        every_bucket = padded(np.arange(self.n_buckets))
        every_bucket[-1] = -1
        docs, buckets = self.occurrences(every_bucket)
        ones = np.ones(len(docs), dtype=np.float32)
        return sparse.csr_matrix((ones, (docs, buckets)), shape=(self.n_docs, self.n_buckets))


@dataclass
class Batch:
    """The features of a batch of texts: the two hashed blocks and the dense structure counts."""

    chars: HashedBlock
    words: HashedBlock
    structure: np.ndarray


def padded(weights: np.ndarray) -> np.ndarray:
    """`weights` (buckets along the first axis) with the reserved bucket appended, mapped to zero."""
    return np.concatenate([weights, np.zeros((1, *weights.shape[1:]), dtype=weights.dtype)])


def featurize(texts: list[str], config: FeatureConfig = FeatureConfig()) -> Batch:
    data, starts, doc_of = _concatenate(texts, pad=config.char_ngrams[1])
    return Batch(
        chars=_char_ngrams(data, starts, config),
        words=_word_ngrams(data, doc_of, len(texts), config),
        structure=_structure(texts, data, starts, doc_of),
    )


def _concatenate(texts: list[str], pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All texts as one lower-cased byte array, each followed by a 0 byte, plus `pad` trailing 0 bytes
    so every n-gram window of every text exists; with each text's start offset and each byte's text."""
    encoded = [t.encode("utf-8", "replace") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    raw = np.frombuffer(b"\0".join(encoded) + b"\0" * (pad + 1), dtype=np.uint8)
    separators = raw == _SEPARATOR
    data = _LOWER[raw]
    data[separators] = _SEPARATOR
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1])).astype(np.int64)
    doc_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths + 1)
    return data, starts, doc_of


def _bucket(hashes: np.ndarray, salt: int, bits: int) -> np.ndarray:
    mixed = (hashes ^ np.uint64(salt * 0x632BE59BD9B4E019 & 0xFFFFFFFFFFFFFFFF)) * _MIX
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


def _char_ngrams(data: np.ndarray, starts: np.ndarray, config: FeatureConfig) -> HashedBlock:
    low, high = config.char_ngrams
    reserved = 1 << config.char_bits
    length = len(data) - high
    values = data.astype(np.uint64)
    separators = np.flatnonzero(data == _SEPARATOR)
    hashes = values
    levels = []
    for n in range(1, high + 1):
        if n > 1:
            hashes = hashes[:-1] * _PRIME + values[n - 1:]
        if n >= low:
            buckets = _bucket(hashes[:length], n, config.char_bits)
            for back in range(n):  # every window that covers a separator is not an n-gram
                covering = separators - back
                buckets[covering[(covering >= 0) & (covering < length)]] = reserved
            levels.append(buckets)
    return HashedBlock(levels, starts, reserved)


def _tokens(data: np.ndarray, doc_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hash and document of each token: a run of letters/digits, a LaTeX command, or one symbol."""
    word = _WORD[data]
    space = _SPACE[data]
    previous = np.concatenate(([_SEPARATOR], data[:-1]))
    joins = word & (_WORD[previous] | (previous == ord("\\")))
    start = ~space & ~joins
    positions = np.flatnonzero(~space)
    token_of = np.cumsum(start)[positions] - 1
    token_start = np.flatnonzero(start)
    offset = positions - token_start[token_of]
    powers = np.cumprod(np.full(int(offset.max(initial=0)) + 1, _PRIME, dtype=np.uint64))
    contribution = data[positions].astype(np.uint64) * powers[offset]
    hashes = np.add.reduceat(contribution, np.flatnonzero(np.diff(token_of, prepend=-1))) \
        if len(positions) else np.zeros(0, dtype=np.uint64)
    return hashes, doc_of[token_start]


def _word_ngrams(data: np.ndarray, doc_of: np.ndarray, n_docs: int, config: FeatureConfig) -> HashedBlock:
    low, high = config.word_ngrams
    reserved = 1 << config.word_bits
    token_hash, token_doc = _tokens(data, doc_of)
    length = len(token_hash) + 1  # one padding position, so the last text's segment is never past the end
    token_hash = np.append(token_hash, np.zeros(high, dtype=np.uint64))
    token_doc = np.append(token_doc, np.full(high, -1))
    hashes = token_hash
    levels = []
    for n in range(1, high + 1):
        if n > 1:
            hashes = hashes[:-1] * _PRIME + token_hash[n - 1:]
        if n >= low:
            buckets = _bucket(hashes[:length], 100 + n, config.word_bits)
            same_doc = token_doc[n - 1:n - 1 + length] == token_doc[:length]
            buckets[~same_doc | (token_doc[:length] < 0)] = reserved
            levels.append(buckets)
    starts = np.searchsorted(token_doc[:length - 1], np.arange(n_docs))
    return HashedBlock(levels, starts, reserved)


def _per_doc(mask: np.ndarray, doc_of: np.ndarray, n_docs: int) -> np.ndarray:
    return np.bincount(doc_of[mask], minlength=n_docs).astype(np.float64)


def _structure(texts: list[str], data: np.ndarray, starts: np.ndarray, doc_of: np.ndarray) -> np.ndarray:
    n = len(texts)
    data = data[:len(doc_of)]
    digit = _DIGIT[data]
    run_start = digit & ~np.concatenate(([False], digit[:-1]))
    run_end = digit & ~np.concatenate((digit[1:], [False]))
    run_length = np.flatnonzero(run_end) - np.flatnonzero(run_start) + 1
    run_doc = doc_of[run_start]
    longest = np.zeros(n)
    np.maximum.at(longest, run_doc, run_length)
    word = _WORD[data]
    word_start = word & ~np.concatenate(([False], word[:-1]))
    counts = [
        np.diff(np.append(starts, len(doc_of))) - 1,
        _per_doc(word_start, doc_of, n),
        *(_per_doc(data == ord(c), doc_of, n) for c in "$\\"),
        _per_doc(digit, doc_of, n),
        _per_doc(run_start, doc_of, n),
        longest,
        *(_per_doc(data == ord(c), doc_of, n) for c in "\n?^={,"),
    ]
    lowered = [t.lower() for t in texts]
    for needle in _SUBSTRINGS:
        if needle is None:
            counts.append(np.fromiter((t.count("\\dfrac") + t.count("\\binom") for t in lowered), float, n))
        else:
            counts.append(np.fromiter((t.count(needle) for t in lowered), float, n))
    return np.column_stack(counts).astype(np.float64)
