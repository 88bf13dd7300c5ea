import numpy as np

from planner.features import STRUCTURE_NAMES, FeatureConfig, featurize


def _occurrences(block, doc):
    return sorted(block.buckets[block.docs == doc].tolist())


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
    assert np.bincount(batch.chars.docs).tolist() == [6, 9]
    # "abcd": one token, no bigram; "ab ab": two tokens + one bigram, the repeated token in one bucket
    assert np.bincount(batch.words.docs).tolist() == [1, 3]
    words_of_second = batch.words.buckets[batch.words.docs == 1]
    assert len(set(words_of_second.tolist())) == 2


def test_ngrams_never_cross_texts():
    joined = featurize(["ab cd"])
    split = featurize(["ab", "cd"])
    assert len(split.chars.docs) < len(joined.chars.docs)
    assert len(split.words.docs) == 2  # two unigrams, and no bigram across the two texts


def test_case_and_latex_tokens():
    upper, lower = featurize(["WHAT IS \\FRAC"]), featurize(["what is \\frac"])
    assert _occurrences(upper.words, 0) == _occurrences(lower.words, 0)
    assert len(featurize(["\\frac"]).words.docs) == 1  # a LaTeX command is one token


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


def test_feature_config_round_trips():
    config = FeatureConfig(char_ngrams=(3, 5), word_bits=16)
    assert FeatureConfig.from_dict(config.to_dict()) == config
