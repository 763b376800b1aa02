"""Tests for the built-in offline tasks in `seq2seq.tasks`."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from seq2seq import tasks
from seq2seq.tasks import (
    DATE_STYLES,
    DEFAULT_TASK,
    TASK_NAMES,
    Task,
    format_date,
    get_task,
    number_to_words,
    write_tsv,
)

SMALL_SIZES = {"num_train": 300, "num_valid": 40, "num_test": 50}

# Written out here rather than imported, so the parser checks the module.
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@pytest.fixture(scope="module")
def default_tasks() -> dict[str, Task]:
    return {name: get_task(name) for name in TASK_NAMES}


def _all_pairs(task: Task) -> list[tuple[str, str]]:
    return task.train + task.valid + task.test


def _digest(task: Task) -> str:
    data = json.dumps([task.train, task.valid, task.test])
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (15, "fifteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (110, "one hundred ten"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (12345, "twelve thousand three hundred forty-five"),
        (100000, "one hundred thousand"),
        (200000, "two hundred thousand"),
        (987654, "nine hundred eighty-seven thousand six hundred fifty-four"),
        (999999, "nine hundred ninety-nine thousand nine hundred ninety-nine"),
    ],
)
def test_number_to_words_golden(number: int, words: str) -> None:
    assert number_to_words(number) == words


@pytest.mark.parametrize("bad", [-1, 1_000_000, 2.0, "5", True, None])
def test_number_to_words_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"n={bad!r}")):
        number_to_words(bad)  # type: ignore[arg-type]


def test_number_to_words_is_injective_on_a_stride() -> None:
    numbers = range(0, 1_000_000, 997)
    assert len({number_to_words(n) for n in numbers}) == len(numbers)


def test_numbers_words_round_trip(default_tasks: dict[str, Task]) -> None:
    for source, target in _all_pairs(default_tasks["numbers"]):
        assert target == str(int(target))
        assert number_to_words(int(target)) == source


def test_numbers_source_style(default_tasks: dict[str, Task]) -> None:
    for source, _ in _all_pairs(default_tasks["numbers"]):
        assert source == source.lower()
        assert "and" not in source.split()
        assert "  " not in source and source == source.strip()


def test_numbers_include_small_and_round_numbers(default_tasks: dict[str, Task]) -> None:
    task = default_tasks["numbers"]
    train_sources = {source for source, _ in task.train}
    for words in ("zero", "seven", "one hundred", "one thousand", "two hundred thousand"):
        assert words in train_sources
    for split in (task.valid, task.test):
        values = [int(target) for _, target in split]
        assert sum(value < 1000 for value in values) >= 0.05 * len(values)
        assert sum(value % 1000 == 0 for value in values) >= 0.02 * len(values)


# --------------------------------------------------------------------------
# dates
# --------------------------------------------------------------------------


def _month_number(name: str) -> int:
    """Month number from a full or three-letter name, any case."""
    name = name.lower()
    matches = [i + 1 for i, month in enumerate(MONTHS) if month == name or month[:3] == name]
    assert len(matches) == 1, name
    return matches[0]


# (pattern, which groups are day, month name or number, year), parsed independently.
_DATE_PATTERNS = [
    (r"(\d{1,2}) ([A-Za-z]+) (\d{4})", "dmy"),
    (r"([A-Za-z]+) (\d{1,2}),? (\d{4})", "mdy"),
    (r"(?:[a-z]+), ([a-z]+) (\d{1,2}), (\d{4})", "mdy"),
    (r"(\d{2})\.(\d{2})\.(\d{4})", "dmy"),
    (r"(\d{4})/(\d{2})/(\d{2})", "ymd"),
    (r"(\d{1,2})(?:st|nd|rd|th) of ([A-Za-z]+) (\d{4})", "dmy"),
    (r"(\d{2})-([A-Za-z]{3})-(\d{4})", "dmy"),
    (r"(?:[A-Za-z]{3}), (\d{1,2}) ([A-Za-z]{3}) (\d{4})", "dmy"),
]


def _parse_human_date(text: str) -> datetime.date:
    """Parses any human style of the dates task, without the module's code."""
    for pattern, order in _DATE_PATTERNS:
        match = re.fullmatch(pattern, text)
        if match:
            fields = dict(zip(order, match.groups(), strict=True))
            month = fields["m"]
            month_number = int(month) if month.isdigit() else _month_number(month)
            return datetime.date(int(fields["y"]), month_number, int(fields["d"]))
    raise AssertionError(f"unparsable date source: {text!r}")


def _weekday_in(text: str) -> int | None:
    """Index of a weekday name (full or three letters) that starts `text`, if any."""
    head = text.split(",")[0].lower()
    for index, weekday in enumerate(WEEKDAYS):
        if head in (weekday, weekday[:3]):
            return index
    return None


def test_format_date_golden() -> None:
    day = datetime.date(2017, 11, 3)
    expected = {
        "day_month_year": "3 November 2017",
        "month_day_comma_year": "November 3, 2017",
        "abbr_month_day_comma_year": "Nov 3, 2017",
        "lower_day_abbr_month_year": "3 nov 2017",
        "lower_weekday_month_day_year": "friday, november 3, 2017",
        "dotted_day_month_year": "03.11.2017",
        "slashed_year_month_day": "2017/11/03",
        "ordinal_of_month_year": "3rd of November 2017",
        "upper_month_day_year": "NOVEMBER 3 2017",
        "dashed_day_abbr_month_year": "03-Nov-2017",
        "abbr_weekday_day_abbr_month_year": "Fri, 3 Nov 2017",
    }
    assert {style: format_date(day, style) for style in DATE_STYLES} == expected


@pytest.mark.parametrize(
    ("day", "text"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th")]
    + [(21, "21st"), (22, "22nd"), (23, "23rd"), (31, "31st")],
)
def test_ordinal_days(day: int, text: str) -> None:
    written = format_date(datetime.date(2020, 1, day), "ordinal_of_month_year")
    assert written == f"{text} of January 2020"


def test_format_date_rejects_unknown_style() -> None:
    with pytest.raises(ValueError, match="style='mm/dd/yy'"):
        format_date(datetime.date(2017, 11, 3), "mm/dd/yy")


def test_dates_targets_are_iso_and_match_sources(default_tasks: dict[str, Task]) -> None:
    for source, target in _all_pairs(default_tasks["dates"]):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        day = datetime.date.fromisoformat(target)
        assert datetime.date(1950, 1, 1) <= day <= datetime.date(2049, 12, 31)
        assert _parse_human_date(source) == day, source


def test_dates_weekdays_are_correct(default_tasks: dict[str, Task]) -> None:
    checked = 0
    for source, target in _all_pairs(default_tasks["dates"]):
        weekday = _weekday_in(source)
        if weekday is not None:
            assert weekday == datetime.date.fromisoformat(target).weekday(), source
            checked += 1
    assert checked > 1000


def test_dates_use_every_style(default_tasks: dict[str, Task]) -> None:
    task = default_tasks["dates"]
    styles_seen = set()
    for source, target in task.test:
        day = datetime.date.fromisoformat(target)
        styles_seen.update(style for style in DATE_STYLES if format_date(day, style) == source)
    assert styles_seen == set(DATE_STYLES)


# --------------------------------------------------------------------------
# get_task: sizes, determinism, disjointness, errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_metadata(name: str, default_tasks: dict[str, Task]) -> None:
    task = default_tasks[name]
    assert task.name == name
    assert task.description
    assert task.source_tokenizer in ("char", "word")
    assert task.target_tokenizer == "char"


def test_default_task_is_numbers_with_word_sources() -> None:
    assert DEFAULT_TASK == "numbers" and TASK_NAMES == ("numbers", "dates")
    task = get_task(num_train=10, num_valid=2, num_test=2)
    assert task.name == "numbers"
    assert (task.source_tokenizer, task.target_tokenizer) == ("word", "char")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_default_sizes(name: str, default_tasks: dict[str, Task]) -> None:
    task = default_tasks[name]
    assert (len(task.train), len(task.valid), len(task.test)) == (20000, 1000, 1000)


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize(
    ("num_train", "num_valid", "num_test"), [(1, 0, 0), (7, 3, 5), (500, 1, 0)]
)
def test_sizes_honoured(name: str, num_train: int, num_valid: int, num_test: int) -> None:
    task = get_task(name, num_train=num_train, num_valid=num_valid, num_test=num_test)
    assert (len(task.train), len(task.valid), len(task.test)) == (num_train, num_valid, num_test)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_splits_unique_and_disjoint_by_source(name: str, default_tasks: dict[str, Task]) -> None:
    task = default_tasks[name]
    splits = [task.train, task.valid, task.test]
    for split in splits:
        assert len({source for source, _ in split}) == len(split)
        assert len(set(split)) == len(split)
    sources = [source for split in splits for source, _ in split]
    assert len(set(sources)) == len(sources)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_deterministic(name: str) -> None:
    assert get_task(name, **SMALL_SIZES, seed=3) == get_task(name, **SMALL_SIZES, seed=3)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_seed_changes_data(name: str) -> None:
    assert get_task(name, **SMALL_SIZES, seed=0) != get_task(name, **SMALL_SIZES, seed=1)


def test_deterministic_across_processes() -> None:
    code = (
        "import hashlib, json; from seq2seq.tasks import get_task, TASK_NAMES\n"
        "for name in TASK_NAMES:\n"
        f"    t = get_task(name, **{SMALL_SIZES!r}, seed=5)\n"
        "    print(hashlib.sha256(json.dumps([t.train, t.valid, t.test]).encode()).hexdigest())\n"
    )
    expected = [_digest(get_task(name, **SMALL_SIZES, seed=5)) for name in TASK_NAMES]
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert result.stdout.split() == expected


@pytest.mark.parametrize("name", TASK_NAMES)
def test_test_split_does_not_depend_on_other_sizes(name: str) -> None:
    small = get_task(name, num_train=5, num_valid=0, num_test=30)
    large = get_task(name, num_train=800, num_valid=60, num_test=30)
    assert small.test == large.test


@pytest.mark.parametrize("name", TASK_NAMES)
def test_train_covers_source_vocabulary(name: str, default_tasks: dict[str, Task]) -> None:
    task = default_tasks[name]

    def tokens(pairs: list[tuple[str, str]]) -> set[str]:
        if task.source_tokenizer == "word":
            return {token for source, _ in pairs for token in source.split()}
        return {char for source, _ in pairs for char in source}

    assert tokens(task.valid + task.test) <= tokens(task.train)


def test_unknown_task_name() -> None:
    with pytest.raises(ValueError, match="name='colours'") as info:
        get_task("colours")
    for name in TASK_NAMES:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        ({"num_train": 0}, "num_train=0"),
        ({"num_train": -5}, "num_train=-5"),
        ({"num_valid": -1}, "num_valid=-1"),
        ({"num_test": 2.5}, "num_test=2.5"),
        ({"num_test": True}, "num_test=True"),
        ({"num_train": 600_000}, "num_train=600000"),
        ({"seed": "0"}, "seed='0'"),
    ],
)
def test_bad_arguments_are_quoted(kwargs: dict[str, object], quoted: str) -> None:
    with pytest.raises(ValueError, match=re.escape(quoted)):
        get_task("numbers", **kwargs)  # type: ignore[arg-type]


def test_dates_size_limit() -> None:
    # 1950..2049 holds 36525 days (25 leap years).
    limit = int(36525 * len(DATE_STYLES) * tasks.MAX_POPULATION_FRACTION)
    with pytest.raises(ValueError, match=f"at most {limit}"):
        get_task("dates", num_train=limit, num_valid=1, num_test=0)


# --------------------------------------------------------------------------
# write_tsv
# --------------------------------------------------------------------------


def test_write_tsv_round_trip(tmp_path) -> None:
    pairs = get_task("dates", **SMALL_SIZES).train + [("zwölf", "12"), ("", "empty source")]
    path = tmp_path / "train.tsv"
    path.write_text("old content that must be replaced\n", encoding="utf-8")
    write_tsv(pairs, path)
    with open(path, encoding="utf-8", newline="") as file:
        text = file.read()
    assert text.endswith("\n") and "\r" not in text
    lines = text.split("\n")[:-1]
    assert [tuple(line.split("\t")) for line in lines] == pairs
    assert os.listdir(tmp_path) == ["train.tsv"]


def test_write_tsv_accepts_str_path_and_creates_folders(tmp_path) -> None:
    path = os.path.join(tmp_path, "a", "b", "data.tsv")
    write_tsv([("one", "1")], path)
    with open(path, encoding="utf-8") as file:
        assert file.read() == "one\t1\n"


@pytest.mark.parametrize(
    "bad_pair", [("a\tb", "x"), ("a", "x\ny"), ("a\r", "x"), ("only one",), ("a", 1)]
)
def test_write_tsv_rejects_bad_pairs_and_writes_nothing(tmp_path, bad_pair) -> None:
    with pytest.raises(ValueError, match=re.escape("pairs[1]=")):
        write_tsv([("fine", "1"), bad_pair], tmp_path / "out.tsv")
    assert os.listdir(tmp_path) == []
