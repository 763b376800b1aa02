"""The tf.data pipeline: sentence pairs -> padded, length-bucketed batches of ids.

Pairs are encoded once to integer ids (kept as two ragged int32 tensors); every
batch is padded only to its own longest sequence and one-hot vectors, if any,
are made inside the model, so memory follows the batch, not the corpus.

Batches are ``({"source": [batch, src_time], "decoder_input": [batch, tgt_time]},
target [batch, tgt_time])`` with ``decoder_input = BOS + y`` and
``target = y + EOS``, all int32 and PAD_ID padded.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import random
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

MAX_REPORTED_EXAMPLES = 5
# Pairs tokenised together by encode_pairs (one tensorflow-text call for "subword").
ENCODE_CHUNK = 4096


@dataclasses.dataclass
class EncodedPairs:
    """Sentence pairs as id sequences (no BOS/EOS yet), packed in flat arrays.

    Pair ``i``'s source is ``source_values[source_offsets[i]:source_offsets[i + 1]]``
    (likewise the target): two int32 arrays and two offset arrays for the
    whole corpus, rather than one Python object per sentence.

    Attributes:
        source_values: int32 [total source tokens].
        source_offsets: int64 [pairs + 1].
        target_values: int32 [total target tokens].
        target_offsets: int64 [pairs + 1].
    """

    source_values: np.ndarray
    source_offsets: np.ndarray
    target_values: np.ndarray
    target_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.source_offsets) - 1

    @property
    def source_lengths(self) -> np.ndarray:
        return np.diff(self.source_offsets)

    @property
    def target_lengths(self) -> np.ndarray:
        return np.diff(self.target_offsets)

    def max_target_length(self) -> int:
        """Returns the longest target, in tokens (0 when empty)."""
        return int(self.target_lengths.max()) if len(self) else 0


@dataclasses.dataclass
class FilterReport:
    """What ``encode_pairs`` dropped, and why (nothing is dropped silently)."""

    num_kept: int = 0
    num_too_long: int = 0
    num_empty: int = 0
    examples: list[int] = dataclasses.field(default_factory=list)

    @property
    def num_dropped(self) -> int:
        return self.num_too_long + self.num_empty

    def summary(self, what: str = "pairs") -> str:
        """Returns one line for the log."""
        text = f"{self.num_kept} {what} kept"
        if self.num_dropped:
            text += (
                f", {self.num_too_long} dropped as longer than the length limit, "
                f"{self.num_empty} dropped as empty after tokenisation "
                f"(first at indices {self.examples})"
            )
        return text


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    max_source_length: int,
    max_target_length: int,
) -> tuple[EncodedPairs, FilterReport]:
    """Tokenises and encodes pairs, dropping (and counting) those over the limits.

    Args:
        pairs: (source, target) strings.
        source_vocab: vocabulary of the source side.
        target_vocab: vocabulary of the target side.
        max_source_length: longest source kept, in tokens.
        max_target_length: longest target kept, in tokens (EOS not counted).

    Returns:
        ``(EncodedPairs, FilterReport)``.
    """
    values = {"source": array.array("i"), "target": array.array("i")}
    lengths = {"source": array.array("q", [0]), "target": array.array("q", [0])}
    report = FilterReport()
    for index, (src, tgt) in enumerate(_encode_in_chunks(pairs, source_vocab, target_vocab)):
        if not src or not tgt:
            report.num_empty += 1
        elif len(src) > max_source_length or len(tgt) > max_target_length:
            report.num_too_long += 1
        else:
            for side, ids in (("source", src), ("target", tgt)):
                values[side].extend(ids)
                lengths[side].append(len(ids))
            report.num_kept += 1
            continue
        if len(report.examples) < MAX_REPORTED_EXAMPLES:
            report.examples.append(index)
    encoded = EncodedPairs(
        source_values=np.frombuffer(values["source"], dtype=np.int32).copy(),
        source_offsets=np.cumsum(np.frombuffer(lengths["source"], dtype=np.int64)),
        target_values=np.frombuffer(values["target"], dtype=np.int32).copy(),
        target_offsets=np.cumsum(np.frombuffer(lengths["target"], dtype=np.int64)),
    )
    return encoded, report


def _encode_in_chunks(
    pairs: Sequence[tuple[str, str]], source_vocab: Vocabulary, target_vocab: Vocabulary
) -> Iterator[tuple[list[int], list[int]]]:
    """Yields the (source, target) ids of each pair, tokenising ``ENCODE_CHUNK`` pairs at a time."""
    pairs = iter(pairs)
    while chunk := list(itertools.islice(pairs, ENCODE_CHUNK)):
        sources = source_vocab.encode_batch([source for source, _ in chunk])
        targets = target_vocab.encode_batch([target for _, target in chunk])
        yield from zip(sources, targets, strict=True)


def split_validation(
    pairs: Sequence[tuple[str, str]], fraction: float, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Holds out a seeded random ``fraction`` of ``pairs`` (at least one pair).

    Returns:
        ``(train, valid)`` lists.
    """
    if len(pairs) < 2:
        raise ValueError(
            f"Need at least 2 sentence pairs to hold some out for validation. Received: {len(pairs)}"
        )
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    num_valid = min(max(1, round(len(pairs) * fraction)), len(pairs) - 1)
    held = set(order[:num_valid])
    train = [p for i, p in enumerate(pairs) if i not in held]
    valid = [p for i, p in enumerate(pairs) if i in held]
    return train, valid


def _batch_inputs(source: tf.RaggedTensor, target: tf.RaggedTensor, multiple: int):
    """Builds one padded batch from ragged ids [batch, (time)].

    Returns ``({"source", "decoder_input"}, target)`` int32 arrays with
    ``decoder_input = BOS + y`` and ``target = y + EOS``, each padded with
    PAD_ID to its longest row rounded up to a multiple of ``multiple``.
    """
    rows = tf.shape(target.row_lengths())[0]
    bos = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(BOS_ID, tf.int32)))
    eos = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(EOS_ID, tf.int32)))

    def dense(ragged):
        longest = tf.reduce_max(ragged.row_lengths())
        width = (longest + multiple - 1) // multiple * multiple
        shape = tf.stack([ragged.nrows(), width])
        return ragged.to_tensor(default_value=PAD_ID, shape=shape)

    decoder_input = tf.concat([bos, target], axis=1)
    decoder_target = tf.concat([target, eos], axis=1)
    return {"source": dense(source), "decoder_input": dense(decoder_input)}, dense(decoder_target)


def bucket_boundaries(max_length: int, width: int) -> list[int]:
    """Returns bucket upper bounds ``width+1, 2*width+1, ...`` covering ``max_length``."""
    return list(range(width + 1, max_length + 1, width))


def make_dataset(
    encoded: EncodedPairs,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    bucket_width: int = 8,
    pad_multiple: int = 1,
    batch_length_limit: int | None = None,
) -> tf.data.Dataset:
    """Builds the batched dataset of one split.

    Args:
        encoded: the encoded pairs.
        batch_size: pairs per batch.
        shuffle: shuffle pairs (seeded, reshuffled every epoch) before bucketing.
        seed: shuffle seed.
        bucket_width: width, in tokens, of the length buckets.
        batch_length_limit: buckets of longer sequences get proportionally
            fewer pairs, so that no batch holds more than ``batch_size *
            batch_length_limit`` steps: activation memory stays bounded
            however long the corpus' sequences are. None: no limit.
        pad_multiple: round each batch's padded lengths up to a multiple of
            this, so that few distinct shapes reach the model (each new shape
            is a new XLA compilation under ``jit_compile``).

    Returns:
        ``tf.data.Dataset`` of ``(inputs, target)`` batches, padded per batch.
    """
    if len(encoded) == 0:
        raise ValueError("Cannot build a dataset from 0 sentence pairs.")
    order = index_order(len(encoded), shuffle, seed)
    batches, _ = _bucketed_batches(
        order, encoded, batch_size, bucket_width, pad_multiple, batch_length_limit
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def index_order(n: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """The indices 0..n-1 (int64), in a new seeded order on every pass if ``shuffle``.

    The permutation comes from a seeded generator whose state lives with the
    dataset: every pass (also from a new iterator, as ``fit`` makes per
    epoch) gets a new order, and no shuffle buffer holds anything.
    """
    if not shuffle:
        return tf.data.Dataset.range(n)
    generator = tf.random.Generator.from_seed(seed)
    return (
        tf.data.Dataset.from_tensors(tf.constant(0))
        .map(lambda _: tf.argsort(generator.uniform([n])))
        .unbatch()
        .map(lambda index: tf.cast(index, tf.int64))
    )


def make_epoch_stream(
    encoded: EncodedPairs,
    batch_size: int,
    *,
    seed: int = 0,
    initial_epoch: int = 0,
    bucket_width: int = 8,
    pad_multiple: int = 1,
    batch_length_limit: int | None = None,
) -> tuple[tf.data.Dataset, int]:
    """The endless stream of shuffled training epochs from ``initial_epoch``, and its steps.

    Epoch ``e`` is one pass over the pairs in the order of a stateless
    permutation drawn from ``(seed, e)``: epoch ``e`` has the same order in
    every run, whichever epoch the run starts from and however many
    iterators are made of the stream (a resumed run, or Keras under
    ``tf.distribute``, which opens one to build the model). The other
    arguments are those of ``make_dataset``.

    Returns:
        ``(dataset, steps)``: the stream of batches, and the batches per epoch.
    """
    if len(encoded) == 0:
        raise ValueError("Cannot build a dataset from 0 sentence pairs.")
    n = len(encoded)
    _, _, steps = _bucket_plan(encoded, batch_size, bucket_width, batch_length_limit)

    def one_epoch(epoch):
        keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        order = tf.data.Dataset.from_tensors(tf.argsort(keys)).unbatch()
        batches, _ = _bucketed_batches(
            order, encoded, batch_size, bucket_width, pad_multiple, batch_length_limit
        )
        return batches

    stream = tf.data.Dataset.range(initial_epoch, 2**62).flat_map(one_epoch)
    return stream.prefetch(tf.data.AUTOTUNE), steps


def epoch_steps(
    encoded: EncodedPairs,
    batch_size: int,
    bucket_width: int = 8,
    batch_length_limit: int | None = None,
) -> int:
    """Batches in one pass over ``encoded`` (the ``steps`` of ``make_epoch_stream``)."""
    return _bucket_plan(encoded, batch_size, bucket_width, batch_length_limit)[2]


def _bucket_plan(
    encoded: EncodedPairs, batch_size: int, bucket_width: int, batch_length_limit: int | None
) -> tuple[list[int], list[int], int]:
    """Returns the bucket boundaries, each bucket's batch size and the batches per pass."""
    lengths = element_lengths(encoded)
    boundaries = bucket_boundaries(int(lengths.max()), bucket_width)
    sizes = bucket_batch_sizes(boundaries, batch_size, batch_length_limit, int(lengths.max()))
    return boundaries, sizes, count_batches(lengths, boundaries, sizes)


def _bucketed_batches(
    order: tf.data.Dataset,
    encoded: EncodedPairs,
    batch_size: int,
    bucket_width: int,
    pad_multiple: int,
    batch_length_limit: int | None,
) -> tuple[tf.data.Dataset, int]:
    """Buckets the pair indices of ``order`` by length and builds the padded batches.

    Returns:
        ``(dataset, number of batches)``.
    """
    order = order.map(lambda index: tf.cast(index, tf.int64))
    boundaries, sizes, steps = _bucket_plan(encoded, batch_size, bucket_width, batch_length_limit)
    lengths = element_lengths(encoded)
    # Bucketing runs on pair indices (cheap scalars); each batch of indices is
    # then turned into padded id arrays with a few vectorised ops.
    length_of = tf.constant(lengths.astype(np.int32))
    dataset = order.bucket_by_sequence_length(
        element_length_func=lambda index: tf.gather(length_of, index),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=sizes,
    )
    source = tf.RaggedTensor.from_row_splits(encoded.source_values, encoded.source_offsets)
    target = tf.RaggedTensor.from_row_splits(encoded.target_values, encoded.target_offsets)

    def make_batch(indices):
        return _batch_inputs(tf.gather(source, indices), tf.gather(target, indices), pad_multiple)

    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Known cardinality gives Keras' progress bar its total from the first epoch.
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)), steps


def element_lengths(encoded: EncodedPairs) -> np.ndarray:
    """Returns each pair's bucketing length: max(source, target + 1) (+1 for BOS/EOS)."""
    return np.maximum(encoded.source_lengths, encoded.target_lengths + 1)


def bucket_batch_sizes(
    boundaries: list[int], batch_size: int, length_limit: int | None, longest: int
) -> list[int]:
    """Returns each bucket's batch size: ``batch_size``, less for buckets over ``length_limit``."""
    uppers = [b - 1 for b in boundaries] + [max(longest, boundaries[-1] if boundaries else 1)]
    if length_limit is None:
        return [batch_size] * len(uppers)
    budget = batch_size * length_limit
    return [min(batch_size, max(1, budget // upper)) for upper in uppers]


def count_batches(lengths: np.ndarray, boundaries: list[int], sizes: list[int]) -> int:
    """Returns how many batches length bucketing makes (independent of the order)."""
    buckets = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    counts = np.bincount(buckets, minlength=len(boundaries) + 1)
    return int(sum(-(-int(n) // size) for n, size in zip(counts, sizes, strict=True)))


def pad_batch(sequences: Sequence[Sequence[int]], multiple: int = 1) -> np.ndarray:
    """Pads id sequences into an int32 array [batch, time], time rounded up to ``multiple``.

    Rounding the padded length keeps the number of distinct shapes (and so of
    compiled graphs) small. Time is at least 1, so an all-empty batch still has
    a valid shape.
    """
    longest = max((len(s) for s in sequences), default=0)
    width = max(1, -(-longest // multiple) * multiple)
    batch = np.full((len(sequences), width), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(sequences):
        batch[row, : len(ids)] = ids
    return batch
