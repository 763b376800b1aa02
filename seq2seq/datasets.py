"""Sentence pairs from TensorFlow Datasets (TFDS) translation datasets.

`load_tfds` reads one split of any TFDS dataset whose examples hold a source
and a target string feature, e.g. `ted_hrlr_translate/pt_to_en` or
`wmt14_translate/de-en`, as a list of (source, target) `str` pairs, the same
data the TSV readers of `seq2seq.readers` return. The two features are the
dataset's supervised keys unless named (`source_key`, `target_key`), which
also turns a dataset around (`wmt14_translate/de-en` read as en -> de).
`load_tfds_splits` reads the train, validation and test splits for training.

Local corpora prepared with `seq2seq.corpus.prepare_corpus` (or the
`seq2seq-prepare` program) load the same way, as
`load_tfds("seq2seq_corpus/<name>", split, data_dir=...)`.

Bad examples are treated as the readers treat bad lines: an empty side or a
string that is not valid UTF-8 stops the load with a `DataError` naming the
dataset, split and example index (0-based, the position in the split as read),
or with `on_bad_line="skip"` is counted in the `ExampleReport`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from seq2seq.readers import (
    MAX_REPORTED_LINES,
    ON_BAD_LINE_CHOICES,
    DataError,
    SentencePair,
)

TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "validation"
TEST_SPLIT = "test"
# The TFDS name of the builder in `seq2seq.corpus` (from its class name, Seq2seqCorpus).
CORPUS_BUILDER_NAME = "seq2seq_corpus"
# Examples converted to numpy per step: large enough to amortise the tf.data overhead.
_READ_BATCH_SIZE = 1024
_KEY_SEPARATOR = "/"
# The file TFDS writes last into a prepared dataset's version directory.
_DATASET_INFO_FILENAME = "dataset_info.json"


@dataclasses.dataclass
class ExampleReport:
    """What was read from one split of a TFDS dataset.

    Attributes:
        dataset: The dataset name, e.g. "ted_hrlr_translate/pt_to_en".
        split: The split as asked for, e.g. "train" or "test[:100]".
        num_pairs: Sentence pairs returned.
        num_skipped: Bad examples skipped (with `on_bad_line="skip"`).
        skipped_examples: 0-based indices of the first `MAX_REPORTED_LINES`
            skipped examples.
        num_examples: Examples read in all (returned plus skipped).
        pair_indices: The 0-based example index of each returned pair, in
            order (not compared by `==`).
    """

    dataset: str
    split: str
    num_pairs: int = 0
    num_skipped: int = 0
    skipped_examples: list[int] = dataclasses.field(default_factory=list)
    num_examples: int = 0
    pair_indices: list[int] = dataclasses.field(default_factory=list, compare=False, repr=False)

    @property
    def location(self) -> str:
        """Where the pairs come from, e.g. "ted_hrlr_translate/pt_to_en, split 'train'"."""
        return f"{self.dataset}, split {self.split!r}"

    def record_skip(self, index: int) -> None:
        """Counts example `index` as a skipped bad example."""
        self.num_skipped += 1
        if len(self.skipped_examples) < MAX_REPORTED_LINES:
            self.skipped_examples.append(index)

    def summary(self) -> str:
        """Returns a one-line human summary.

        Example: "ted_hrlr_translate/pt_to_en, split 'train': 51783 pairs, 2 bad
        examples skipped (examples 4, 17)".
        """
        parts = [_plural(self.num_pairs, "pair")]
        if self.num_skipped:
            listed = ", ".join(str(index) for index in self.skipped_examples)
            unlisted = self.num_skipped - len(self.skipped_examples)
            if unlisted > 0:
                listed += f" and {unlisted} more"
            label = "example" if self.num_skipped == 1 else "examples"
            parts.append(f"{_plural(self.num_skipped, 'bad example')} skipped ({label} {listed})")
        return f"{self.location}: {', '.join(parts)}"


@dataclasses.dataclass
class TfdsSplits:
    """The splits of a TFDS dataset used for training.

    Attributes:
        train: The pairs of the train split.
        validation: The pairs of the validation split, or None if the dataset
            has none (or it was not asked for).
        test: The pairs of the test split, or None likewise.
        reports: One `ExampleReport` per split read, in the order read.
    """

    train: list[SentencePair]
    validation: list[SentencePair] | None
    test: list[SentencePair] | None
    reports: list[ExampleReport]


class _Keys(NamedTuple):
    """The source and target feature keys of a dataset."""

    source: str
    target: str


def load_tfds(
    name: str,
    split: str = TEST_SPLIT,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source_key: str | None = None,
    target_key: str | None = None,
    on_bad_line: str = "error",
    download: bool = True,
) -> tuple[list[SentencePair], ExampleReport]:
    """Reads one split of a TFDS dataset as (source, target) pairs.

    Args:
        name: The TFDS name, "dataset/config" (e.g.
            "ted_hrlr_translate/pt_to_en"), optionally with ":version".
        split: A TFDS split, e.g. "test", "validation" or a slice such as
            "train[:1000]".
        data_dir: The TFDS data directory; None for TFDS' default
            (`$TFDS_DATA_DIR` or ~/tensorflow_datasets).
        source_key: The feature holding the source sentence (nested features
            as "outer/inner"); None for the first supervised key. Naming only
            one of the two keys takes the other supervised key for the other side.
        target_key: The feature holding the target sentence; None for the
            second supervised key.
        on_bad_line: "error" to raise on the first bad example, "skip" to count
            it in the report and go on.
        download: Download and prepare the dataset if it is not in `data_dir`
            yet (needs the network for a registered dataset).

    Returns:
        The pairs in split order, and the `ExampleReport`.

    Raises:
        DataError: On a bad example with `on_bad_line="error"` (naming dataset,
            split and example index), if the split holds no pairs, if the
            split does not exist, or if a local corpus was not prepared.
        ValueError: If the dataset is unknown, a key is not one of its string
            features, it has no supervised keys and no keys are named, or
            `on_bad_line` is invalid.
    """
    _check_on_bad_line(on_bad_line)
    builder = _open_builder(name, data_dir, download)
    keys = _resolve_keys(name, builder, source_key, target_key)
    return _read_split(name, builder, split, keys, on_bad_line)


def load_tfds_splits(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source_key: str | None = None,
    target_key: str | None = None,
    on_bad_line: str = "error",
    download: bool = True,
    with_validation: bool = True,
    with_test: bool = True,
) -> TfdsSplits:
    """Reads the train split of a TFDS dataset, and its validation and test splits if any.

    Args:
        name: The TFDS name, "dataset/config".
        data_dir: The TFDS data directory; None for TFDS' default.
        source_key: The source feature, as in `load_tfds`.
        target_key: The target feature, as in `load_tfds`.
        on_bad_line: "error" or "skip", as in `load_tfds`.
        download: Download and prepare the dataset if needed, as in `load_tfds`.
        with_validation: Read the validation split when the dataset has one.
        with_test: Read the test split when the dataset has one.

    Returns:
        `TfdsSplits`: `validation` and `test` are None when the dataset has no
        such split. When TFDS does not know the split names (a dataset
        restored without its metadata, as under `tfds.testing.mock_data`),
        all three standard splits are read.

    Raises:
        DataError, ValueError: As `load_tfds`; a DataError too if the dataset
            has no train split.
    """
    _check_on_bad_line(on_bad_line)
    builder = _open_builder(name, data_dir, download)
    keys = _resolve_keys(name, builder, source_key, target_key)
    known = set(builder.info.splits.keys())
    if known and TRAIN_SPLIT not in known:
        raise DataError(
            f"{name} has no {TRAIN_SPLIT!r} split to train on; its splits: "
            f"{', '.join(map(repr, sorted(known)))}."
        )
    reports = []

    def read(split: str, wanted: bool = True) -> list[SentencePair] | None:
        if not wanted or (known and split not in known):
            return None
        pairs, report = _read_split(name, builder, split, keys, on_bad_line)
        reports.append(report)
        return pairs

    train = read(TRAIN_SPLIT)
    validation = read(VALIDATION_SPLIT, with_validation)
    test = read(TEST_SPLIT, with_test)
    return TfdsSplits(train=train, validation=validation, test=test, reports=reports)


def is_corpus_name(name: str) -> bool:
    """Whether `name` names a local corpus prepared by `seq2seq.corpus`."""
    return name.split(_KEY_SEPARATOR, 1)[0] == CORPUS_BUILDER_NAME


def _check_on_bad_line(on_bad_line: str) -> None:
    """Raises `ValueError` if `on_bad_line` is not a known choice."""
    if on_bad_line not in ON_BAD_LINE_CHOICES:
        raise ValueError(
            f"Expected `on_bad_line` to be one of {', '.join(map(repr, ON_BAD_LINE_CHOICES))}. "
            f"Received: on_bad_line={on_bad_line!r}"
        )


def _open_builder(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> Any:
    """Returns the TFDS builder of `name`, its data prepared (downloaded) if asked."""
    import tensorflow_datasets as tfds

    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"Expected a TFDS dataset name such as 'ted_hrlr_translate/pt_to_en'. Received: name={name!r}"
        )
    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir is not None else None
    if is_corpus_name(name):
        _check_corpus_prepared(name, data_dir or tfds.core.constants.DATA_DIR)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        # TFDS' own message lists every dataset; the first line is what matters.
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(f"Unknown TFDS dataset {name!r}: {first_line}") from None
    if download:
        try:
            builder.download_and_prepare()
        except OSError as error:  # No network, a server down, a full disk.
            raise DataError(
                f"could not download and prepare {name} in {builder.data_dir}: {error}"
            ) from error
    elif not builder.is_prepared():
        raise DataError(f"{name} is not prepared in {builder.data_dir} (download=False).")
    return builder


def _check_corpus_prepared(name: str, data_dir: str) -> None:
    """Raises `DataError` if the local corpus `name` was not prepared in `data_dir`."""
    parts = name.split(":", 1)[0].split(_KEY_SEPARATOR)
    if len(parts) != 2 or not parts[1]:
        raise ValueError(
            f"Expected a local corpus name of the form '{CORPUS_BUILDER_NAME}/<corpus name>'. "
            f"Received: {name!r}"
        )
    path = os.path.join(os.path.expanduser(data_dir), *parts)
    # A preparation that failed leaves at most an empty directory: look for a version.
    versions = os.listdir(path) if os.path.isdir(path) else []
    if not any(os.path.isfile(os.path.join(path, v, _DATASET_INFO_FILENAME)) for v in versions):
        raise DataError(
            f"no prepared corpus {parts[1]!r} in {data_dir} (nothing prepared in {path}); prepare it "
            f"first with seq2seq-prepare --corpus_dir=DIR --name={parts[1]} --tfds_data_dir={data_dir}"
        )


def _feature_names(features: Any, prefix: str = "") -> list[str]:
    """Returns the keys of the string features of `features`, nested ones as "a/b"."""
    names = []
    for key, feature in features.items():
        path = f"{prefix}{key}"
        if hasattr(feature, "items"):
            names.extend(_feature_names(feature, f"{path}{_KEY_SEPARATOR}"))
        elif _is_text(feature):
            names.append(path)
    return names


def _is_text(feature: Any) -> bool:
    """Whether a TFDS feature holds one string per example."""
    shape = getattr(feature, "shape", None)
    tf_dtype = getattr(feature, "tf_dtype", None)
    return shape == () and tf_dtype is not None and tf_dtype.name == "string"


def _resolve_keys(name: str, builder: Any, source_key: str | None, target_key: str | None) -> _Keys:
    """Returns the source and target feature keys, checked against the dataset's features."""
    text_features = _feature_names(builder.info.features)
    supervised = builder.info.supervised_keys
    if supervised is not None and not (
        len(supervised) >= 2 and all(isinstance(key, str) for key in supervised[:2])
    ):
        supervised = None
    if source_key is None or target_key is None:
        if supervised is None:
            raise ValueError(
                f"{name} has no supervised keys; name the source and target features with "
                f"source_key and target_key (--tfds_source_key, --tfds_target_key). "
                f"Its string features: {', '.join(map(repr, text_features))}."
            )
        first, second = supervised[0], supervised[1]
        if source_key is None and target_key is None:
            source_key, target_key = first, second
        else:
            given = source_key if source_key is not None else target_key
            if given not in (first, second):
                raise ValueError(
                    f"Naming one feature only takes the other supervised key of {name} "
                    f"({first!r}, {second!r}) for the other side, but {given!r} is not one of "
                    "them; name both source_key and target_key."
                )
            other = second if given == first else first
            source_key, target_key = (given, other) if source_key is not None else (other, given)
    for role, key in (("source", source_key), ("target", target_key)):
        if key not in text_features:
            raise ValueError(
                f"Expected `{role}_key` to be a string feature of {name}: "
                f"{', '.join(map(repr, text_features))}. Received: {role}_key={key!r}"
            )
    if source_key == target_key:
        raise ValueError(
            f"Expected different features for source and target. Received: "
            f"source_key={source_key!r}, target_key={target_key!r}"
        )
    return _Keys(source_key, target_key)


def _get(example: dict, key: str) -> Any:
    """Returns the (possibly nested, "a/b") feature `key` of `example`."""
    for part in key.split(_KEY_SEPARATOR):
        example = example[part]
    return example


def _iterate_split(builder: Any, split: str, keys: _Keys) -> Iterator[tuple[bytes, bytes]]:
    """Yields the raw (source, target) byte strings of a split, in order."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, shuffle_files=False)
    dataset = dataset.map(lambda example: (_get(example, keys.source), _get(example, keys.target)))
    dataset = dataset.batch(_READ_BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
    for sources, targets in tfds.as_numpy(dataset):
        yield from zip(sources.tolist(), targets.tolist(), strict=True)


class _BadExample(NamedTuple):
    """Why an example cannot be turned into a pair."""

    reason: str


def _decode(raw: bytes | str, side: str, key: str) -> str | _BadExample:
    """Decodes and strips one side; returns a `_BadExample` if it is not a usable sentence."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return _BadExample(
                f"invalid UTF-8 in the {side} sentence (feature {key!r}, byte "
                f"0x{error.object[error.start]:02x} at byte offset {error.start})"
            )
    text = raw.strip()
    if not text:
        return _BadExample(f"empty {side} sentence (feature {key!r})")
    return text


def _read_split(
    name: str, builder: Any, split: str, keys: _Keys, on_bad_line: str
) -> tuple[list[SentencePair], ExampleReport]:
    """Reads one split into pairs and its report."""
    import tensorflow as tf

    report = ExampleReport(dataset=name, split=split)
    try:
        raw_pairs = _iterate_split(builder, split, keys)
        pairs = _collect(raw_pairs, keys, report, on_bad_line)
    except DataError:
        raise
    except (ValueError, KeyError, tf.errors.OpError) as error:
        # An unknown split, a malformed slice ("train[:x]") or unreadable files, as TFDS
        # or TensorFlow words it.
        raise DataError(f"cannot read split {split!r}: {error}", path=name) from None
    return pairs, report


def _collect(
    raw_pairs: Iterable[tuple[bytes, bytes]], keys: _Keys, report: ExampleReport, on_bad_line: str
) -> list[SentencePair]:
    """Decodes raw pairs, filling in `report`.

    Raises:
        DataError: On a bad example if `on_bad_line` is "error", or if no pair
            was found.
    """
    pairs: list[SentencePair] = []
    for index, (raw_source, raw_target) in enumerate(raw_pairs):
        report.num_examples += 1
        source = _decode(raw_source, "source", keys.source)
        target = _decode(raw_target, "target", keys.target)
        bad = source if isinstance(source, _BadExample) else target
        if isinstance(bad, _BadExample):
            if on_bad_line == "error":
                raise DataError(bad.reason, path=f"{report.location}, example {index}")
            report.record_skip(index)
            continue
        pairs.append((source, target))
        report.pair_indices.append(index)
        report.num_pairs += 1
    if not pairs:
        skipped = (
            f" ({_plural(report.num_skipped, 'bad example')} skipped)" if report.num_skipped else ""
        )
        raise DataError(f"contains no sentence pairs{skipped}.", path=report.location)
    return pairs


def _plural(count: int, noun: str) -> str:
    """Returns e.g. "1 pair" or "3 pairs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
