"""Readers for parallel text: (source, target) sentence pairs.

Two layouts are supported:

* `read_tsv`: one pair per line, `source<TAB>target[<TAB>extra columns]`, the
  Tatoeba / Anki (manythings.org) format.
* `read_aligned`: two files with one sentence per line, line `i` of one being
  the translation of line `i` of the other.

Files are read line by line in binary and each line is decoded on its own, so
a bad line gives an error naming the file and line (or, with
`on_bad_line="skip"`, is counted in the `ReadReport`) instead of a crash; no
line is ever dropped silently. Pure Python; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

ON_BAD_LINE_CHOICES = ("error", "skip")
MAX_REPORTED_LINES = 20

SentencePair = tuple[str, str]
PathLike = str | os.PathLike[str]

_UTF8_BOM = b"\xef\xbb\xbf"
_LINE_END = b"\n"
_CARRIAGE_RETURN = b"\r"
_FIELD_SEPARATOR = "\t"


class DataError(ValueError):
    """A data file is malformed.

    The message has the form "path:line: reason" (or "path: reason" for a
    problem with the file as a whole).

    Args:
        reason: What is wrong.
        path: The file, if known.
        line: The 1-based line number, if the problem is one line.

    Attributes:
        reason: What is wrong.
        path: The file, or None.
        line: The 1-based line number, or None.
    """

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{location}{reason}")


@dataclasses.dataclass
class ReadReport:
    """What a reader read, skipped and ignored.

    Attributes:
        path: The file read (for aligned files, both names joined by " + ").
        num_pairs: Sentence pairs returned.
        num_skipped: Bad lines skipped (with `on_bad_line="skip"`).
        skipped_lines: 1-based numbers of the first `MAX_REPORTED_LINES`
            skipped lines.
        num_blank: Blank (whitespace-only) lines ignored.
        num_lines: Lines read in all, i.e. the sum of the three counts above.
        num_extra_columns: Pairs whose line had columns after the target
            (ignored, e.g. the attribution column of Tatoeba / Anki files);
            counted, not bad.
        pair_lines: The 1-based line number of each returned pair, in order
            (not compared by `==`).
    """

    path: str
    num_pairs: int = 0
    num_skipped: int = 0
    skipped_lines: list[int] = dataclasses.field(default_factory=list)
    num_blank: int = 0
    num_lines: int = 0
    num_extra_columns: int = 0
    pair_lines: list[int] = dataclasses.field(default_factory=list, compare=False, repr=False)

    def record_skip(self, line: int) -> None:
        """Counts line number `line` as a skipped bad line."""
        self.num_skipped += 1
        if len(self.skipped_lines) < MAX_REPORTED_LINES:
            self.skipped_lines.append(line)

    def summary(self) -> str:
        """Returns a one-line human summary.

        Example: "data/train.tsv: 19998 pairs, 2 bad lines skipped (lines 4, 17)".
        """
        parts = [_plural(self.num_pairs, "pair")]
        if self.num_skipped:
            listed = ", ".join(str(line) for line in self.skipped_lines)
            unlisted = self.num_skipped - len(self.skipped_lines)
            if unlisted > 0:
                listed += f" and {unlisted} more"
            label = "line" if self.num_skipped == 1 else "lines"
            parts.append(f"{_plural(self.num_skipped, 'bad line')} skipped ({label} {listed})")
        if self.num_blank:
            parts.append(f"{_plural(self.num_blank, 'blank line')} ignored")
        if self.num_extra_columns:
            lines = _plural(self.num_extra_columns, "line")
            parts.append(f"columns after the target ignored on {lines}")
        return f"{self.path}: {', '.join(parts)}"


def _plural(count: int, noun: str) -> str:
    """Returns e.g. "1 pair" or "3 pairs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class _BadLine:
    """A line that cannot be turned into a pair, and why."""

    def __init__(self, reason: str, path: str) -> None:
        self.reason = reason
        self.path = path


class _PairWithExtra(NamedTuple):
    """A good pair whose line had columns after the target."""

    source: str
    target: str


# What a line turns into: a pair, a bad line, or None for a blank line.
_Outcome = SentencePair | _PairWithExtra | _BadLine | None


def read_tsv(
    path: PathLike,
    *,
    on_bad_line: str = "error",
    max_pairs: int | None = None,
) -> tuple[list[SentencePair], ReadReport]:
    """Reads tab-separated sentence pairs, one per line.

    Each line is `source<TAB>target`, optionally followed by more tab-separated
    columns, which are ignored and counted in `ReadReport.num_extra_columns`.
    A tab always separates columns, so a field cannot contain one: in
    `a<TAB>b<TAB>c` the source is `a`, the target `b`, and `c` is ignored. A
    UTF-8 byte order mark at the start, CRLF or LF line ends and whitespace
    around each field are removed. Blank
    (whitespace-only) lines are ignored and counted. A line is bad if it is
    not valid UTF-8, has no tab, or has an empty source or target.

    Args:
        path: The file to read.
        on_bad_line: "error" to raise on the first bad line, "skip" to count it
            in the report and go on.
        max_pairs: Positive integer; stop after this many pairs. `None` reads
            the whole file.

    Returns:
        The (source, target) pairs in file order, and the `ReadReport`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        DataError: On a bad line with `on_bad_line="error"` ("path:line:
            reason"), or if the file contains no sentence pairs.
        ValueError: If `on_bad_line` or `max_pairs` is invalid.
    """
    _check_options(on_bad_line, max_pairs)
    path = os.fspath(path)
    report = ReadReport(path=path)
    with open(path, "rb") as file:
        pairs = _collect(_tsv_outcomes(file, path), report, on_bad_line, max_pairs)
    return pairs, report


def read_aligned(
    source_path: PathLike,
    target_path: PathLike,
    *,
    on_bad_line: str = "error",
    max_pairs: int | None = None,
) -> tuple[list[SentencePair], ReadReport]:
    """Reads sentence pairs from two line-aligned files.

    Line `i` of `source_path` pairs with line `i` of `target_path`. Line ends,
    a leading byte order mark and surrounding whitespace are removed as in
    `read_tsv`. A line pair that is blank on both sides is ignored and counted
    as blank; one where only one side is empty, or either side is not valid
    UTF-8, is bad. Both files are counted first, so a line count mismatch is
    reported whatever `max_pairs` is.

    Args:
        source_path: The source-language file.
        target_path: The target-language file.
        on_bad_line: "error" or "skip", as in `read_tsv`.
        max_pairs: Positive integer; stop after this many pairs. `None` reads
            the whole files.

    Returns:
        The (source, target) pairs in file order, and the `ReadReport`.

    Raises:
        FileNotFoundError: If either file does not exist.
        DataError: If the files have different numbers of lines (naming both
            files and counts), on a bad line with `on_bad_line="error"`
            (naming the file and line), or if there are no sentence pairs.
        ValueError: If `on_bad_line` or `max_pairs` is invalid.
    """
    _check_options(on_bad_line, max_pairs)
    source_path = os.fspath(source_path)
    target_path = os.fspath(target_path)
    source_count = _count_lines(source_path)
    target_count = _count_lines(target_path)
    if source_count != target_count:
        raise DataError(
            f"aligned files have different line counts: {source_path} has "
            f"{_plural(source_count, 'line')}, {target_path} has {_plural(target_count, 'line')}."
        )
    report = ReadReport(path=f"{source_path} + {target_path}")
    with open(source_path, "rb") as source_file, open(target_path, "rb") as target_file:
        outcomes = _aligned_outcomes(source_file, target_file, source_path, target_path)
        pairs = _collect(outcomes, report, on_bad_line, max_pairs)
    return pairs, report


def read_pairs(
    path_or_paths: PathLike | tuple[PathLike, PathLike],
    **kwargs: object,
) -> tuple[list[SentencePair], ReadReport]:
    """Reads pairs from a TSV file or from a pair of aligned files.

    Args:
        path_or_paths: A single path, read with `read_tsv`, or a
            `(source_path, target_path)` tuple or list, read with `read_aligned`.
        **kwargs: Passed on to the reader (`on_bad_line`, `max_pairs`).

    Returns:
        The (source, target) pairs and the `ReadReport`.

    Raises:
        TypeError: If `path_or_paths` is neither a path nor a pair of paths.
        FileNotFoundError, DataError, ValueError: As raised by the reader.
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        return read_tsv(path_or_paths, **kwargs)  # type: ignore[arg-type]
    if isinstance(path_or_paths, (tuple, list)) and len(path_or_paths) == 2:
        return read_aligned(*path_or_paths, **kwargs)  # type: ignore[arg-type]
    raise TypeError(
        "Expected a path or a (source_path, target_path) pair for `path_or_paths`. "
        f"Received: {path_or_paths!r}"
    )


def _check_options(on_bad_line: str, max_pairs: int | None) -> None:
    """Raises `ValueError` if a reader option is invalid."""
    if on_bad_line not in ON_BAD_LINE_CHOICES:
        raise ValueError(
            f"Expected `on_bad_line` to be one of {', '.join(map(repr, ON_BAD_LINE_CHOICES))}. "
            f"Received: on_bad_line={on_bad_line!r}"
        )
    if max_pairs is not None and (
        isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1
    ):
        raise ValueError(
            f"Expected a positive integer or None for `max_pairs`. Received: max_pairs={max_pairs!r}"
        )


def _count_lines(path: str) -> int:
    """Returns the number of lines of `path` (a last line without a newline counts)."""
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def _decode_line(raw: bytes, line: int) -> str:
    """Decodes one raw line without its line end (and BOM, on line 1).

    Raises:
        UnicodeDecodeError: If the line is not valid UTF-8.
    """
    if line == 1 and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    if raw.endswith(_LINE_END):
        raw = raw[: -len(_LINE_END)]
    if raw.endswith(_CARRIAGE_RETURN):
        raw = raw[: -len(_CARRIAGE_RETURN)]
    return raw.decode("utf-8")


def _describe_decode_error(error: UnicodeDecodeError) -> str:
    """Returns a short reason for a UTF-8 decoding failure."""
    bad_byte = error.object[error.start]
    return f"invalid UTF-8 (byte 0x{bad_byte:02x} at byte offset {error.start} of the line)"


def _make_pair(source: str, target: str, source_path: str, target_path: str) -> _Outcome:
    """Strips both sides; returns the pair, or a `_BadLine` if a side is empty."""
    source, target = source.strip(), target.strip()
    if not source:
        return _BadLine("empty source sentence", source_path)
    if not target:
        return _BadLine("empty target sentence", target_path)
    return source, target


def _tsv_outcomes(file: BinaryIO, path: str) -> Iterator[tuple[int, _Outcome]]:
    """Yields (line number, outcome) for each line of a TSV file."""
    for line, raw in enumerate(file, start=1):
        try:
            text = _decode_line(raw, line)
        except UnicodeDecodeError as error:
            yield line, _BadLine(_describe_decode_error(error), path)
            continue
        if not text.strip():
            yield line, None
            continue
        fields = text.split(_FIELD_SEPARATOR)
        if len(fields) < 2:
            yield line, _BadLine("no tab between source and target", path)
            continue
        outcome = _make_pair(fields[0], fields[1], path, path)
        if len(fields) > 2 and not isinstance(outcome, _BadLine):
            outcome = _PairWithExtra(*outcome)
        yield line, outcome


def _aligned_outcomes(
    source_file: BinaryIO, target_file: BinaryIO, source_path: str, target_path: str
) -> Iterator[tuple[int, _Outcome]]:
    """Yields (line number, outcome) for each line pair of two aligned files."""
    # The caller has checked that both files have the same number of lines.
    line_pairs = zip(source_file, target_file, strict=True)
    for line, (raw_source, raw_target) in enumerate(line_pairs, start=1):
        texts = []
        for raw, path in ((raw_source, source_path), (raw_target, target_path)):
            try:
                texts.append(_decode_line(raw, line))
            except UnicodeDecodeError as error:
                yield line, _BadLine(_describe_decode_error(error), path)
                break
        else:
            source, target = texts
            if not source.strip() and not target.strip():
                yield line, None
            else:
                yield line, _make_pair(source, target, source_path, target_path)


def _collect(
    outcomes: Iterable[tuple[int, _Outcome]],
    report: ReadReport,
    on_bad_line: str,
    max_pairs: int | None,
) -> list[SentencePair]:
    """Gathers pairs from `outcomes`, filling in `report`.

    Raises:
        DataError: On a bad line if `on_bad_line` is "error", or if no pair
            was found.
    """
    pairs: list[SentencePair] = []
    for line, outcome in outcomes:
        report.num_lines = line
        if outcome is None:
            report.num_blank += 1
        elif isinstance(outcome, _BadLine):
            if on_bad_line == "error":
                raise DataError(outcome.reason, path=outcome.path, line=line)
            report.record_skip(line)
        else:
            if isinstance(outcome, _PairWithExtra):
                report.num_extra_columns += 1
                outcome = (outcome.source, outcome.target)
            pairs.append(outcome)
            report.pair_lines.append(line)
            report.num_pairs += 1
            if max_pairs is not None and report.num_pairs >= max_pairs:
                break
    if not pairs:
        details = []
        if report.num_skipped:
            details.append(f"{_plural(report.num_skipped, 'bad line')} skipped")
        if report.num_blank:
            details.append(f"{_plural(report.num_blank, 'blank line')}")
        suffix = f" ({', '.join(details)})" if details else ""
        raise DataError(f"contains no sentence pairs{suffix}.", path=report.path)
    return pairs
