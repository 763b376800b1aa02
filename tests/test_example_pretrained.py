"""The pretrained-embeddings example (docs/examples/pretrained_embeddings.py) at test size."""

import importlib.util
import os

import numpy as np
import pytest

EXAMPLE = os.path.join(
    os.path.dirname(__file__), os.pardir, "docs", "examples", "pretrained_embeddings.py"
)


def load_example():
    """Imports the example by path: docs/ is not a package."""
    spec = importlib.util.spec_from_file_location("pretrained_embeddings_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()

# Measured at test size with seeds 0, 1, 2 (exact match, greedy decoding):
# seen >= 0.91 for every variant; unseen: random <= 0.14, frozen >= 0.83,
# trainable >= 0.85. The thresholds leave a margin below those.
MIN_EXACT_MATCH_SEEN = 0.8
MIN_EXACT_MATCH_UNSEEN_PRETRAINED = 0.7
MAX_EXACT_MATCH_UNSEEN_RANDOM = 0.35


@pytest.fixture(scope="module")
def results():
    return example.main(**example.TEST_SIZES, verbose=False)


def test_coverage_is_as_constructed(results):
    words_per_group = example.TEST_SIZES["words_per_group"]
    # The file leaves out the first word of each group and has every group name.
    assert results["coverage"]["source"] == pytest.approx((words_per_group - 1) / words_per_group)
    assert results["coverage"]["target"] == 1.0
    assert results["vocab_words"] == words_per_group * len(example.GROUPS)
    assert results["held_out_words"] == 3 * len(example.GROUPS)


def test_only_the_frozen_run_keeps_its_embeddings(results):
    variants = results["variants"]
    assert variants["frozen"]["embeddings_unchanged"]
    assert not variants["trainable"]["embeddings_unchanged"]
    assert not variants["random"]["embeddings_unchanged"]


def test_every_variant_learns_the_seen_words(results):
    assert set(results["variants"]) == set(example.VARIANTS)
    for name, scores in results["variants"].items():
        assert scores["exact_match_seen"] >= MIN_EXACT_MATCH_SEEN, (name, scores)
        assert 0.0 <= scores["token_accuracy_unseen"] <= 1.0, (name, scores)


def test_only_pretrained_vectors_translate_words_unseen_in_training(results):
    variants = results["variants"]
    random_unseen = variants["random"]["exact_match_unseen"]
    assert random_unseen <= MAX_EXACT_MATCH_UNSEEN_RANDOM
    for name in ("frozen", "trainable"):
        assert variants[name]["exact_match_unseen"] >= MIN_EXACT_MATCH_UNSEEN_PRETRAINED, name
        assert variants[name]["token_accuracy_unseen"] > variants["random"]["token_accuracy_unseen"]


def test_generated_vectors_cluster_by_group():
    vectors = example.make_vectors(dim=16, seed=0)
    centres = np.stack([vectors[group] for group in example.GROUPS])
    for index, words in enumerate(example.GROUPS.values()):
        for word in words.split():
            distances = np.linalg.norm(centres - vectors[word], axis=1)
            assert np.argmin(distances) == index, word


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="held_out"):
        example.main(words_per_group=3, held_out=3, verbose=False)
    with pytest.raises(ValueError, match="variants"):
        example.main(variants=("glove",), verbose=False)
