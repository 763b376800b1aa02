"""Tests for seq2seq.readers: TSV and aligned parallel-text readers."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq.readers import (
    MAX_REPORTED_LINES,
    ON_BAD_LINE_CHOICES,
    DataError,
    ReadReport,
    read_aligned,
    read_pairs,
    read_tsv,
)


def _write(directory, name, data):
    path = directory / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def _line_count(data: bytes) -> int:
    """Counts lines the way a text editor does: a final unterminated line counts."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def test_read_tsv_normal_file(tmp_path):
    path = _write(tmp_path, "data.tsv", "Go.\tVa !\nHi.\tSalut !\n")
    pairs, report = read_tsv(path)
    assert pairs == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert report == ReadReport(path=str(path), num_pairs=2, num_lines=2)
    assert report.summary() == f"{path}: 2 pairs"


def test_read_tsv_ignores_extra_columns_and_strips_fields(tmp_path):
    path = _write(
        tmp_path, "anki.tsv", "  Run! \t Cours !  \tCC-BY 2.0 (France) Attribution\textra\n"
    )
    pairs, _ = read_tsv(path)
    assert pairs == [("Run!", "Cours !")]


def test_read_tsv_counts_extra_columns_and_keeps_line_numbers(tmp_path):
    # A tab always separates columns: "a<TAB>b<TAB>c" is source a, target b, c ignored.
    path = _write(tmp_path, "extra.tsv", "a\tb\tc\n\nbad\nd\te\nf\tg\t\th\n")
    pairs, report = read_tsv(path, on_bad_line="skip")
    assert pairs == [("a", "b"), ("d", "e"), ("f", "g")]
    assert report.num_extra_columns == 2
    assert report.pair_lines == [1, 4, 5]
    assert report.summary() == (
        f"{path}: 3 pairs, 1 bad line skipped (line 3), 1 blank line ignored, "
        "columns after the target ignored on 2 lines"
    )


def test_read_tsv_handles_crlf_and_missing_final_newline(tmp_path):
    path = _write(tmp_path, "dos.tsv", b"a\tb\r\nc\td\r\ne\tf")
    pairs, report = read_tsv(path)
    assert pairs == [("a", "b"), ("c", "d"), ("e", "f")]
    assert report.num_lines == 3


def test_read_tsv_strips_utf8_bom(tmp_path):
    path = _write(tmp_path, "bom.tsv", "\ufeffÉté\tsummer\nnaïve\tnaive\n")
    pairs, _ = read_tsv(path)
    assert pairs == [("Été", "summer"), ("naïve", "naive")]


def test_read_tsv_counts_blank_lines(tmp_path):
    path = _write(tmp_path, "blank.tsv", "\na\tb\n   \n\r\nc\td\n\n")
    pairs, report = read_tsv(path)
    assert pairs == [("a", "b"), ("c", "d")]
    assert (report.num_pairs, report.num_blank, report.num_skipped) == (2, 4, 0)
    assert report.summary() == f"{path}: 2 pairs, 4 blank lines ignored"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"no tab here", "no tab"),
        (b"\ttarget only", "empty source"),
        (b"source only\t  ", "empty target"),
        (b"bad \xff byte\tx", "invalid UTF-8"),
        (b"\xc3\tx", "invalid UTF-8"),
    ],
)
def test_read_tsv_bad_line_error_names_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path, "bad.tsv", b"a\tb\n\n" + line + b"\nc\td\n")
    with pytest.raises(DataError, match=reason) as info:
        read_tsv(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert (info.value.path, info.value.line) == (str(path), 3)


def test_read_tsv_skip_mode_counts_bad_lines(tmp_path):
    path = _write(tmp_path, "mixed.tsv", b"a\tb\nbad\n\nc\td\n\tx\n\xffe\tf\ng\th\n")
    pairs, report = read_tsv(path, on_bad_line="skip")
    assert pairs == [("a", "b"), ("c", "d"), ("g", "h")]
    assert report.num_skipped == 3
    assert report.skipped_lines == [2, 5, 6]
    assert report.num_blank == 1
    assert report.summary() == (
        f"{path}: 3 pairs, 3 bad lines skipped (lines 2, 5, 6), 1 blank line ignored"
    )


def test_skip_report_lists_at_most_max_reported_lines(tmp_path):
    num_bad = MAX_REPORTED_LINES + 5
    path = _write(tmp_path, "many_bad.tsv", "bad\n" * num_bad + "a\tb\n")
    pairs, report = read_tsv(path, on_bad_line="skip")
    assert pairs == [("a", "b")]
    assert report.num_skipped == num_bad
    assert report.skipped_lines == list(range(1, MAX_REPORTED_LINES + 1))
    assert report.summary().endswith(f", {MAX_REPORTED_LINES} and 5 more)")


def test_summary_singular_forms():
    report = ReadReport(path="x.tsv", num_pairs=1, num_skipped=1, skipped_lines=[4])
    assert report.summary() == "x.tsv: 1 pair, 1 bad line skipped (line 4)"


@pytest.mark.parametrize("on_bad_line", ON_BAD_LINE_CHOICES)
@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf", b"only bad\n"])
def test_file_without_pairs_raises(tmp_path, data, on_bad_line):
    path = _write(tmp_path, "empty.tsv", data)
    expected_error = "no tab" if data == b"only bad\n" and on_bad_line == "error" else "no sentence"
    with pytest.raises(DataError, match=expected_error) as info:
        read_tsv(path, on_bad_line=on_bad_line)
    assert str(path) in str(info.value)


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "missing.tsv"
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_tsv(path)
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_aligned(path, path)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"on_bad_line": "warn"}, "'warn'"),
        ({"max_pairs": 0}, "max_pairs=0"),
        ({"max_pairs": 1.5}, "max_pairs=1.5"),
    ],
)
def test_bad_options_raise_value_error(tmp_path, kwargs, name):
    path = _write(tmp_path, "data.tsv", "a\tb\n")
    with pytest.raises(ValueError, match=name):
        read_tsv(path, **kwargs)
    with pytest.raises(ValueError, match=name):
        read_aligned(path, path, **kwargs)


def test_max_pairs_stops_early(tmp_path):
    path = _write(tmp_path, "long.tsv", "".join(f"s{i}\tt{i}\n" for i in range(10)) + "bad\n")
    pairs, report = read_tsv(path, max_pairs=3)
    assert pairs == [("s0", "t0"), ("s1", "t1"), ("s2", "t2")]
    assert (report.num_pairs, report.num_lines) == (3, 3)


def test_read_aligned_ok(tmp_path):
    source = _write(tmp_path, "train.en", "\ufeffHello .\r\n\n  Bye . \nTabs\tstay\n")
    target = _write(tmp_path, "train.fr", "Bonjour .\r\n\nAu revoir .\nLes\ttabs\n")
    pairs, report = read_aligned(source, target)
    assert pairs == [
        ("Hello .", "Bonjour ."),
        ("Bye .", "Au revoir ."),
        ("Tabs\tstay", "Les\ttabs"),
    ]
    assert (report.num_pairs, report.num_blank, report.num_lines) == (3, 1, 4)
    assert str(source) in report.path and str(target) in report.path


def test_read_aligned_mismatched_counts_names_both_files(tmp_path):
    source = _write(tmp_path, "a.en", "one\ntwo\nthree\n")
    target = _write(tmp_path, "a.fr", "un\ndeux\n")
    for max_pairs in (None, 1):
        with pytest.raises(DataError, match="3 lines.*2 lines") as info:
            read_aligned(source, target, max_pairs=max_pairs)
        assert str(source) in str(info.value) and str(target) in str(info.value)


@pytest.mark.parametrize(
    ("source_text", "target_text", "bad_file", "reason"),
    [
        (b"a\n \nc\n", b"x\ny\nz\n", "s.txt", "empty source"),
        (b"a\nb\nc\n", b"x\n\nz\n", "t.txt", "empty target"),
        (b"a\nb\xfe\nc\n", b"x\ny\nz\n", "s.txt", "invalid UTF-8"),
        (b"a\nb\nc\n", b"x\n\xe2\x82\nz\n", "t.txt", "invalid UTF-8"),
    ],
)
def test_read_aligned_bad_line(tmp_path, source_text, target_text, bad_file, reason):
    source = _write(tmp_path, "s.txt", source_text)
    target = _write(tmp_path, "t.txt", target_text)
    with pytest.raises(DataError, match=reason) as info:
        read_aligned(source, target)
    assert str(info.value).startswith(f"{tmp_path / bad_file}:2: ")
    pairs, report = read_aligned(source, target, on_bad_line="skip")
    assert pairs == [("a", "x"), ("c", "z")]
    assert (report.num_skipped, report.skipped_lines) == (1, [2])


def test_read_pairs_dispatches_on_argument(tmp_path):
    tsv = _write(tmp_path, "d.tsv", "a\tb\n")
    source = _write(tmp_path, "d.en", "a\n")
    target = _write(tmp_path, "d.fr", "b\n")
    assert read_pairs(tsv)[0] == [("a", "b")]
    assert read_pairs(str(tsv), max_pairs=1)[0] == [("a", "b")]
    assert read_pairs((source, target))[0] == [("a", "b")]
    assert read_pairs([str(source), str(target)], on_bad_line="skip")[0] == [("a", "b")]
    with pytest.raises(TypeError, match="source_path, target_path"):
        read_pairs((tsv,))


_NOISY_LINE = st.lists(
    st.sampled_from([b"a", b"\xc3\xa9", b"\t", b" ", b"\r", b"\xff", b"\xc3", b"\xef\xbb\xbf"]),
    max_size=8,
).map(b"".join)
_GOOD_LINE = st.tuples(st.text(min_size=1, max_size=5), st.text(min_size=1, max_size=5)).map(
    lambda pair: "\t".join(pair).replace("\n", " ").encode("utf-8")
)
_LINE_BYTES = st.one_of(_GOOD_LINE, _NOISY_LINE)
_FILE_BYTES = st.one_of(
    st.binary(max_size=200),
    st.lists(_LINE_BYTES, max_size=12).map(b"\n".join),
)
_FIXTURE_OK = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FIXTURE_OK
@given(data=_FILE_BYTES)
def test_tsv_on_random_bytes_raises_only_data_error(tmp_path, data):
    path = _write(tmp_path, "random.tsv", data)
    try:
        pairs, report = read_tsv(path)
    except DataError as error:
        assert str(path) in str(error)
    else:
        assert report.num_skipped == 0
        assert len(pairs) == report.num_pairs == report.num_lines - report.num_blank


@_FIXTURE_OK
@given(data=_FILE_BYTES)
def test_tsv_skip_mode_on_random_bytes_accounts_for_every_line(tmp_path, data):
    path = _write(tmp_path, "random.tsv", data)
    try:
        pairs, report = read_tsv(path, on_bad_line="skip")
    except DataError as error:
        assert "no sentence pairs" in str(error)
        return
    assert len(pairs) == report.num_pairs > 0
    assert report.num_lines == _line_count(data)
    assert report.num_pairs + report.num_skipped + report.num_blank == report.num_lines
    assert report.skipped_lines == sorted(report.skipped_lines)
    assert len(report.skipped_lines) == min(report.num_skipped, MAX_REPORTED_LINES)
    assert len(report.pair_lines) == len(pairs)
    assert report.pair_lines == sorted(set(report.pair_lines))
    assert not set(report.pair_lines) & set(report.skipped_lines)
    assert report.num_extra_columns <= report.num_pairs
    for source, target in pairs:
        assert source and target and source == source.strip() and target == target.strip()


@_FIXTURE_OK
@given(source_data=_FILE_BYTES, target_data=_FILE_BYTES)
def test_aligned_on_random_bytes_raises_only_data_error(tmp_path, source_data, target_data):
    source = _write(tmp_path, "random.src", source_data)
    target = _write(tmp_path, "random.tgt", target_data)
    for on_bad_line in ON_BAD_LINE_CHOICES:
        try:
            _, report = read_aligned(source, target, on_bad_line=on_bad_line)
        except DataError:
            continue
        assert report.num_pairs + report.num_skipped + report.num_blank == report.num_lines
        assert report.num_lines == _line_count(source_data) == _line_count(target_data)
