"""The tf.data pipeline: shifted targets, per-batch padding, bucketing, filtering, seeding."""

import numpy as np
import pytest

from seq2seq.data import (
    count_batches,
    encode_pairs,
    make_dataset,
    pad_batch,
    split_validation,
)
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

PAIRS = [("abc", "xy"), ("a", "yyyy"), ("abcabcabcabc", "x"), ("bb", "xyxyxyxyxyx"), ("c", "y")]


def _vocabs():
    return (
        Vocabulary.build((s for s, _ in PAIRS), "char"),
        Vocabulary.build((t for _, t in PAIRS), "char"),
    )


def test_decoder_input_and_target_are_shifted():
    src_vocab, tgt_vocab = _vocabs()
    encoded, _ = encode_pairs(PAIRS[:1], src_vocab, tgt_vocab, 50, 50)
    inputs, target = next(iter(make_dataset(encoded, batch_size=4)))
    y = tgt_vocab.encode("xy")
    assert inputs["decoder_input"].numpy().tolist() == [[BOS_ID, *y]]
    assert target.numpy().tolist() == [[*y, EOS_ID]]
    assert inputs["source"].numpy().tolist() == [src_vocab.encode("abc")]


def test_batches_are_padded_to_their_own_longest_sequence():
    src_vocab, tgt_vocab = _vocabs()
    encoded, _ = encode_pairs(PAIRS, src_vocab, tgt_vocab, 50, 50)
    widths = []
    total = 0
    for inputs, target in make_dataset(encoded, batch_size=2, bucket_width=4):
        source = inputs["source"].numpy()
        lengths = (source != PAD_ID).sum(1)
        assert source.shape[1] == lengths.max()  # no global padding
        assert inputs["decoder_input"].shape == target.shape
        widths.append(source.shape[1])
        total += source.shape[0]
    assert total == len(PAIRS)
    assert len(set(widths)) > 1


def test_long_and_empty_pairs_are_dropped_and_counted():
    src_vocab, tgt_vocab = _vocabs()
    pairs = [*PAIRS, ("", "x"), ("a", " ")]
    encoded, report = encode_pairs(pairs, src_vocab, tgt_vocab, 5, 5)
    assert report.num_too_long == 2  # the 12-char source and the 11-char target
    assert report.num_empty == 1  # "" (" " is a real char token)
    assert report.num_kept == len(encoded) == 4
    assert "dropped" in report.summary()


def test_shuffle_is_seeded_and_cardinality_is_exact():
    rng = np.random.default_rng(0)
    pairs = [("a" * int(n), "b" * int(m)) for n, m in rng.integers(1, 30, size=(200, 2))]
    src_vocab = Vocabulary.build((s for s, _ in pairs), "char")
    tgt_vocab = Vocabulary.build((t for _, t in pairs), "char")
    encoded, _ = encode_pairs(pairs, src_vocab, tgt_vocab, 50, 50)

    def order(seed):
        ds = make_dataset(encoded, 16, shuffle=True, seed=seed)
        return [b[0]["source"].numpy().tolist() for b in ds]

    assert order(1) == order(1)
    assert order(1) != order(2)
    ds = make_dataset(encoded, 16, shuffle=True, seed=1)
    assert int(ds.cardinality()) == len(list(ds))


def test_count_batches():
    assert count_batches(np.array([1, 2, 9, 10, 11]), [5], sizes=[2, 2]) == 1 + 2
    assert count_batches(np.array([1, 2, 9, 10, 11]), [5], sizes=[2, 1]) == 1 + 3


def test_long_buckets_get_smaller_batches():
    rng = np.random.default_rng(0)
    pairs = [("a" * int(n), "b" * int(n)) for n in rng.integers(1, 120, size=300)]
    src_vocab = Vocabulary.build((s for s, _ in pairs), "char")
    tgt_vocab = Vocabulary.build((t for _, t in pairs), "char")
    encoded, _ = encode_pairs(pairs, src_vocab, tgt_vocab, 200, 200)
    ds = make_dataset(encoded, 16, bucket_width=8, batch_length_limit=32)
    total = 0
    for _, target in ds:
        assert target.shape[0] * target.shape[1] <= 16 * 32 + 16 * 8  # bucket slack
        total += target.shape[0]
    assert total == len(pairs)
    assert int(ds.cardinality()) == len(list(ds))


def test_split_validation_is_seeded_and_disjoint():
    pairs = [(str(i), str(i)) for i in range(100)]
    train, valid = split_validation(pairs, 0.1, seed=3)
    assert len(valid) == 10 and len(train) == 90
    assert not set(train) & set(valid)
    assert split_validation(pairs, 0.1, seed=3) == (train, valid)
    with pytest.raises(ValueError, match="at least 2"):
        split_validation(pairs[:1], 0.1, 0)


def test_pad_batch_rounds_length_and_handles_empty_inputs():
    batch = pad_batch([[5, 6, 7], []], multiple=4)
    assert batch.shape == (2, 4)
    assert batch.tolist() == [[5, 6, 7, 0], [0, 0, 0, 0]]
    assert pad_batch([[]]).shape == (1, 1)


def test_pad_multiple_rounds_batch_lengths_up():
    src_vocab, tgt_vocab = _vocabs()
    encoded, _ = encode_pairs(PAIRS, src_vocab, tgt_vocab, 50, 50)
    for inputs, target in make_dataset(encoded, batch_size=2, pad_multiple=8):
        assert inputs["source"].shape[1] % 8 == 0
        assert inputs["decoder_input"].shape[1] % 8 == 0
        assert target.shape == inputs["decoder_input"].shape


def test_each_pass_over_a_shuffled_dataset_has_a_new_order():
    pairs = [("a" * (i % 7 + 1) + str(i), "b" * (i % 5 + 1)) for i in range(300)]
    src_vocab = Vocabulary.build((s for s, _ in pairs), "char")
    tgt_vocab = Vocabulary.build((t for _, t in pairs), "char")
    encoded, _ = encode_pairs(pairs, src_vocab, tgt_vocab, 100, 100)
    ds = make_dataset(encoded, 16, shuffle=True, seed=0)
    first = [b[0]["source"].numpy().tolist() for b in ds]
    second = [b[0]["source"].numpy().tolist() for b in ds]  # a new iterator, as fit makes
    assert first != second
