"""Local parallel corpora prepared once as a TFDS dataset, then reloaded fast.

A corpus directory holds one file (or one pair of files) per split:

* the training split, required: `train.tsv`, or the aligned pair
  `train.<source suffix>` + `train.<target suffix>`;
* the validation split, optional: the same under the name `validation`,
  `valid`, `val` or `dev` (one of them);
* the test split, optional: the same under the name `test`.

A `.tsv` file holds `source<TAB>target` per line (further columns ignored),
read by `seq2seq.readers.read_tsv`; an aligned pair holds one sentence per
line, line i of one file translating line i of the other, read by
`seq2seq.readers.read_aligned`. The suffixes are "source" and "target" unless
given (`train.en` + `train.fr` with `source_suffix="en"`,
`target_suffix="fr"`). Other files in the directory are ignored.

`prepare_corpus` reads the files once (bad lines stop it, naming file and
line, or are skipped and counted with `on_bad_line="skip"`) and writes the
TFDS dataset `seq2seq_corpus/<name>` under a TFDS data directory, with string
features "source" and "target" (the supervised keys) in file order. It is
written under a temporary name and renamed into place by TFDS. Running it
again reuses the prepared data as long as the files and settings are the
same; `seq2seq.datasets.load_tfds("seq2seq_corpus/<name>", data_dir=...)`
reloads it without reading the text files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

import tensorflow_datasets as tfds
from absl import logging

from seq2seq.datasets import (
    CORPUS_BUILDER_NAME,
    TEST_SPLIT,
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
)
from seq2seq.readers import (
    ON_BAD_LINE_CHOICES,
    DataError,
    ReadReport,
    SentencePair,
    read_aligned,
    read_tsv,
)

CORPUS_VERSION = "1.0.0"
DEFAULT_SOURCE_SUFFIX = "source"
DEFAULT_TARGET_SUFFIX = "target"
TSV_SUFFIX = "tsv"
# File name stems accepted for each split, in the order they are looked for.
SPLIT_FILE_NAMES = {
    TRAIN_SPLIT: ("train",),
    VALIDATION_SPLIT: ("validation", "valid", "val", "dev"),
    TEST_SPLIT: ("test",),
}
SOURCE_FEATURE = "source"
TARGET_FEATURE = "target"
# Corpus names become TFDS config names: no "/", ":", "=" or "," (TFDS name syntax).
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_HASH_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class SplitFiles:
    """The file (TSV) or files (aligned source, target) of one split.

    Attributes:
        split: "train", "validation" or "test".
        paths: One TSV path, or the (source, target) paths of aligned files.
    """

    split: str
    paths: tuple[str, ...]

    def read(self, on_bad_line: str = "error") -> tuple[list[SentencePair], ReadReport]:
        """Reads the split's pairs with the reader for its layout.

        Raises:
            DataError: On a bad line with `on_bad_line="error"` (naming file
                and line), or if the files hold no pairs.
        """
        if len(self.paths) == 1:
            return read_tsv(self.paths[0], on_bad_line=on_bad_line)
        return read_aligned(*self.paths, on_bad_line=on_bad_line)


@dataclasses.dataclass(frozen=True)
class PreparedCorpus:
    """Where `prepare_corpus` put a corpus, and what it holds.

    Attributes:
        tfds_name: The name to load it by, "seq2seq_corpus/<name>" (the value
            of `--tfds`).
        data_dir: The TFDS data directory (the value of `--tfds_data_dir`).
        path: The directory of the prepared dataset.
        reused: True if an earlier preparation of the same files was reused.
        num_examples: Examples (sentence pairs) per split.
        reports: The reader's summary per split (bad lines skipped, blank lines).
    """

    tfds_name: str
    data_dir: str
    path: str
    reused: bool
    num_examples: dict[str, int]
    reports: dict[str, str]


@dataclasses.dataclass
class CorpusConfig(tfds.core.BuilderConfig):
    """The configuration of one local corpus: its name and where its files are.

    Attributes:
        corpus_dir: The corpus directory (see the module docstring).
        source_suffix: Suffix of the source file of an aligned pair.
        target_suffix: Suffix of the target file of an aligned pair.
        on_bad_line: "error" or "skip", as in `seq2seq.readers`.
    """

    corpus_dir: str = ""
    source_suffix: str = DEFAULT_SOURCE_SUFFIX
    target_suffix: str = DEFAULT_TARGET_SUFFIX
    on_bad_line: str = "error"


class Seq2seqCorpus(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of a local parallel corpus; one config per corpus.

    Configs are made at preparation time (`CorpusConfig`); a prepared corpus
    reloads from its files, with or without this class.
    """

    VERSION = tfds.core.Version(CORPUS_VERSION)
    RELEASE_NOTES = {CORPUS_VERSION: "Source and target strings from local split files."}

    def _info(self) -> tfds.core.DatasetInfo:
        # Not `dataset_info_from_configs`: that reads README/CITATIONS files next to
        # the module, which a builder inside a package does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description="A local parallel corpus prepared by seq2seq-prepare.",
            features=tfds.features.FeaturesDict(
                {SOURCE_FEATURE: tfds.features.Text(), TARGET_FEATURE: tfds.features.Text()}
            ),
            supervised_keys=(SOURCE_FEATURE, TARGET_FEATURE),
            metadata=tfds.core.MetadataDict(),
            # File order is kept, so that a test split lines up with its source file.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager  # Nothing to download: the files are local.
        config = self.builder_config
        files = find_split_files(config.corpus_dir, config.source_suffix, config.target_suffix)
        self.info.metadata.update(_fingerprint(config, files))
        return {split: self._generate_examples(split_files) for split, split_files in files.items()}

    def _generate_examples(self, split_files: SplitFiles) -> Iterator[tuple[int, dict[str, str]]]:
        """Yields (line number, {"source", "target"}) for each pair of a split."""
        pairs, report = split_files.read(self.builder_config.on_bad_line)
        _log_report(report)
        self.info.metadata.setdefault("reports", {})[split_files.split] = report.summary()
        for line, (source, target) in zip(report.pair_lines, pairs, strict=True):
            yield line, {SOURCE_FEATURE: source, TARGET_FEATURE: target}


def find_split_files(
    corpus_dir: str | os.PathLike[str],
    source_suffix: str = DEFAULT_SOURCE_SUFFIX,
    target_suffix: str = DEFAULT_TARGET_SUFFIX,
) -> dict[str, SplitFiles]:
    """Finds the split files of a corpus directory.

    Args:
        corpus_dir: The corpus directory.
        source_suffix: Suffix of the source file of an aligned pair ("en" for
            `train.en`).
        target_suffix: Suffix of the target file of an aligned pair.

    Returns:
        The `SplitFiles` of each split present, "train" first.

    Raises:
        FileNotFoundError: If `corpus_dir` is not a directory.
        DataError: If there is no training data, a split is given twice (two
            names or two layouts), or an aligned file lacks its partner.
        ValueError: If the suffixes are empty, equal or "tsv".
    """
    _check_suffixes(source_suffix, target_suffix)
    corpus_dir = os.fspath(corpus_dir)
    if not os.path.isdir(corpus_dir):
        raise FileNotFoundError(f"Corpus directory not found: {corpus_dir}")
    present = set(os.listdir(corpus_dir))
    found = {}
    for split, stems in SPLIT_FILE_NAMES.items():
        candidates = []
        for stem in stems:
            tsv = f"{stem}.{TSV_SUFFIX}"
            source, target = f"{stem}.{source_suffix}", f"{stem}.{target_suffix}"
            if tsv in present:
                candidates.append((tsv,))
            if source in present and target in present:
                candidates.append((source, target))
            elif source in present or target in present:
                have, lacking = (source, target) if source in present else (target, source)
                raise DataError(f"{have} has no aligned partner {lacking}.", path=corpus_dir)
        if len(candidates) > 1:
            names = " and ".join(" + ".join(names) for names in candidates)
            raise DataError(f"{split} data given twice: {names}; keep one.", path=corpus_dir)
        if candidates:
            paths = tuple(os.path.join(corpus_dir, name) for name in candidates[0])
            found[split] = SplitFiles(split=split, paths=paths)
    if TRAIN_SPLIT not in found:
        listed = ", ".join(sorted(present)) or "nothing"
        raise DataError(
            f"no training data: expected train.{TSV_SUFFIX}, or train.{source_suffix} + "
            f"train.{target_suffix} (set the suffixes with --source_suffix/--target_suffix); "
            f"found: {listed}.",
            path=corpus_dir,
        )
    return found


def prepare_corpus(
    corpus_dir: str | os.PathLike[str],
    name: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    source_suffix: str = DEFAULT_SOURCE_SUFFIX,
    target_suffix: str = DEFAULT_TARGET_SUFFIX,
    on_bad_line: str = "error",
    overwrite: bool = False,
) -> PreparedCorpus:
    """Prepares a local corpus directory as the TFDS dataset `seq2seq_corpus/<name>`.

    Idempotent: when the dataset exists and was prepared from files with the
    same contents and the same settings, it is reused as it is.

    Args:
        corpus_dir: The corpus directory (layout in the module docstring).
        name: The corpus name (letters, digits, "_" and "-"); None for the
            directory's base name.
        data_dir: The TFDS data directory to write to; None for TFDS'
            default (`$TFDS_DATA_DIR` or ~/tensorflow_datasets).
        source_suffix: Suffix of the source file of an aligned pair.
        target_suffix: Suffix of the target file of an aligned pair.
        on_bad_line: "error" to stop at the first bad line, "skip" to skip
            (and count) bad lines.
        overwrite: Prepare again even if the dataset exists, replacing it.

    Returns:
        A `PreparedCorpus`.

    Raises:
        FileNotFoundError: If `corpus_dir` is not a directory.
        DataError: On a bad corpus layout, a bad line (with
            `on_bad_line="error"`), or a split without pairs; or if the
            dataset exists but was prepared from other files or settings and
            `overwrite` is false. Nothing prepared before is changed then.
        ValueError: If `name`, the suffixes or `on_bad_line` are invalid.
    """
    corpus_dir = os.path.abspath(os.fspath(corpus_dir))
    if name is None:
        name = os.path.basename(corpus_dir.rstrip(os.sep))
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            "Expected a corpus name of letters, digits, '_' and '-', starting with a letter "
            f"or digit. Received: name={name!r}"
        )
    if on_bad_line not in ON_BAD_LINE_CHOICES:
        raise ValueError(
            f"Expected `on_bad_line` to be one of {', '.join(map(repr, ON_BAD_LINE_CHOICES))}. "
            f"Received: on_bad_line={on_bad_line!r}"
        )
    data_dir = os.path.abspath(
        os.path.expanduser(os.fspath(data_dir or tfds.core.constants.DATA_DIR))
    )
    config = CorpusConfig(
        name=name,
        corpus_dir=corpus_dir,
        source_suffix=source_suffix,
        target_suffix=target_suffix,
        on_bad_line=on_bad_line,
    )
    files = find_split_files(corpus_dir, source_suffix, target_suffix)
    builder = Seq2seqCorpus(config=config, data_dir=data_dir)
    tfds_name = f"{CORPUS_BUILDER_NAME}/{name}"
    reused = os.path.isdir(builder.data_dir)
    if reused:
        wanted = _fingerprint(config, files)
        stored = {key: builder.info.metadata.get(key) for key in wanted}
        if stored != wanted and not overwrite:
            raise DataError(
                f"{tfds_name} was prepared in {data_dir} from other files or settings "
                f"({_describe_difference(stored, wanted)}); prepare it again with "
                "overwrite=True (--overwrite), or choose another name.",
                path=corpus_dir,
            )
        reused = not overwrite
    if not reused:
        if os.path.isdir(builder.data_dir):
            # TFDS deletes the old dataset before writing the new one: read every
            # split first, so that a bad line leaves the old dataset in place.
            for split_files in files.values():
                split_files.read(on_bad_line)
        mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(download_mode=mode)
        )
    else:
        logging.info("Reusing %s prepared in %s from the same files.", tfds_name, builder.data_dir)
    splits = builder.info.splits
    return PreparedCorpus(
        tfds_name=tfds_name,
        data_dir=data_dir,
        path=os.fspath(builder.data_dir),
        reused=reused,
        num_examples={split: splits[split].num_examples for split in files if split in splits},
        reports=dict(builder.info.metadata.get("reports", {})),
    )


def _log_report(report: ReadReport) -> None:
    """Logs what a reader read; skipped bad lines as a warning."""
    if report.num_skipped:
        logging.warning("%s", report.summary())
    else:
        logging.info("%s", report.summary())


def _check_suffixes(source_suffix: str, target_suffix: str) -> None:
    """Raises `ValueError` unless the aligned-file suffixes are usable."""
    for role, suffix in (("source", source_suffix), ("target", target_suffix)):
        if not isinstance(suffix, str) or not suffix or suffix == TSV_SUFFIX or os.sep in suffix:
            raise ValueError(
                f"Expected a file name suffix other than {TSV_SUFFIX!r} for `{role}_suffix`. "
                f"Received: {role}_suffix={suffix!r}"
            )
    if source_suffix == target_suffix:
        raise ValueError(
            "Expected different suffixes for source and target files. Received: "
            f"source_suffix={source_suffix!r}, target_suffix={target_suffix!r}"
        )


def _sha256(path: str) -> str:
    """Returns the SHA-256 hex digest of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(config: CorpusConfig, files: dict[str, SplitFiles]) -> dict[str, Any]:
    """What a preparation depends on: file names and contents per split, and the settings."""
    return {
        "files": {
            split: [
                {"name": os.path.basename(path), "sha256": _sha256(path)}
                for path in split_files.paths
            ]
            for split, split_files in files.items()
        },
        "on_bad_line": config.on_bad_line,
    }


def _describe_difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """Says briefly how a stored fingerprint differs from the wanted one."""
    if stored.get("on_bad_line") != wanted["on_bad_line"]:
        return f"on_bad_line was {stored.get('on_bad_line')!r}, now {wanted['on_bad_line']!r}"
    stored_files = stored.get("files") or {}
    changed = []
    for split in sorted(set(stored_files) | set(wanted["files"])):
        before, now = stored_files.get(split), wanted["files"].get(split)
        if before != now:
            names = now or before
            changed.append(f"{split}: {' + '.join(entry['name'] for entry in names)}")
    return "changed " + "; ".join(changed) if changed else "different metadata"
