import numpy as np

from planner.prediction.features import STRUCTURE_NAMES, FeatureConfig, featurize


def _occurrences(block, doc):
    """The buckets of one document's occurrences, with multiplicity."""
    row = block.counts()[doc]
    return sorted(np.repeat(row.indices, row.data.astype(int)).tolist())


def _per_doc(block):
    return np.asarray(block.counts().sum(axis=1)).ravel().astype(int).tolist()


def test_batch_features_equal_one_text_at_a_time():
    texts = ["Find $x$ if $2x+3=7$.", "", "Compute $\\frac{1}{2}+\\frac{1}{3}$.", "ÉTÉ: what is 3^4?"]
    batch = featurize(texts)
    for i, text in enumerate(texts):
        alone = featurize([text])
        assert _occurrences(batch.chars, i) == _occurrences(alone.chars, 0)
        assert _occurrences(batch.words, i) == _occurrences(alone.words, 0)
        np.testing.assert_array_equal(batch.structure[i], alone.structure[0])


def test_ngram_counts_follow_the_text():
    batch = featurize(["abcd", "ab ab"], FeatureConfig(char_ngrams=(2, 4), word_ngrams=(1, 2)))
    # "abcd": 3 bigrams + 2 trigrams + 1 four-gram; "ab ab": 4 + 3 + 2
    assert _per_doc(batch.chars) == [6, 9]
    # "abcd": one token, no bigram; "ab ab": two tokens + one bigram, the repeated token in one bucket
    assert _per_doc(batch.words) == [1, 3]
    assert len(set(_occurrences(batch.words, 1))) == 2


def test_ngrams_never_cross_texts():
    joined = featurize(["ab cd"])
    split = featurize(["ab", "cd"])
    assert sum(_per_doc(split.chars)) < sum(_per_doc(joined.chars))
    assert _per_doc(split.words) == [1, 1]  # one unigram each, and no bigram across the two texts


def test_case_and_latex_tokens():
    upper, lower = featurize(["WHAT IS \\FRAC"]), featurize(["what is \\frac"])
    assert _occurrences(upper.words, 0) == _occurrences(lower.words, 0)
    assert _per_doc(featurize(["\\frac"]).words) == [1]  # a LaTeX command is one token


def test_structure_counts():
    text = "Let $x = \\frac{12}{345}$. Is x^2 = 7?\n[asy]draw((0,0));[/asy] Express your answer as 50%."
    row = dict(zip(STRUCTURE_NAMES, featurize([text]).structure[0]))
    assert row["chars"] == len(text.encode())
    assert row["dollars"] == 2
    assert row["numbers"] == 7  # 12 345 2 7 0 0 50
    assert row["longest_number"] == 3
    assert row["lines"] == 1
    assert row["questions"] == 1
    assert row["fracs"] == 1
    assert row["diagrams"] == 1
    assert row["express"] == 1
    assert row["percent"] == 1


def test_segment_sums_match_counts_including_empty_texts():
    texts = ["", "x", "a b c", "", "$1+2$", ""]
    batch = featurize(texts)
    for block in (batch.chars, batch.words):
        weights = np.random.default_rng(0).random(block.n_buckets + 1)
        weights[-1] = 0.0
        expected = block.counts() @ weights[:-1]
        np.testing.assert_allclose(block.sums(weights), expected)


def test_feature_config_round_trips():
    config = FeatureConfig(char_ngrams=(3, 5), word_bits=16)
    assert FeatureConfig.from_dict(config.to_dict()) == config
