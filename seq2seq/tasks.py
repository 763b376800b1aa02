"""Built-in offline tasks: deterministic, translation-style toy data sets.

Two tasks are generated on the fly, with no downloads:

* ``"numbers"`` (the default): English words of an integer -> its digits,
  e.g. ``"nine hundred eighty-seven thousand six hundred fifty-four"`` ->
  ``"987654"``.
* ``"dates"``: a date written by a human in one of several styles -> ISO 8601,
  e.g. ``"friday, november 3, 2017"`` -> ``"2017-11-03"``.

Every split is a pure function of ``(name, sizes, seed)``: the generator is a
``random.Random`` seeded from a string (hashed with SHA-512 by the standard
library, never with the process-salted ``hash()``), so any process produces the
same pairs. Sources are unique across all splits, so train, valid and test are
disjoint by source string. The test split is drawn first and the valid split
second, so the test split for a given ``(name, num_test, seed)`` does not change
with ``num_train`` or ``num_valid``.

A few *anchor* pairs (for example every number below one hundred, or every
month in every date style) are reserved for the train split, so that every
source token of the task occurs in training data; anchors never appear in
valid or test.
"""

from __future__ import annotations

import datetime
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

DEFAULT_TASK = "numbers"
TASK_NAMES: tuple[str, ...] = ("numbers", "dates")

DEFAULT_NUM_TRAIN = 20_000
DEFAULT_NUM_VALID = 1_000
DEFAULT_NUM_TEST = 1_000

# At most this fraction of a task's distinct sources may be requested, so that
# drawing unique sources by rejection stays fast.
MAX_POPULATION_FRACTION = 0.5
# Anchors take at most this fraction of the train split.
MAX_ANCHOR_FRACTION = 0.5

Pair = tuple[str, str]


@dataclass(frozen=True)
class Task:
    """A generated translation-style data set with its three splits.

    Attributes:
        name: Task name, one of `TASK_NAMES`.
        description: One-line human description of the task.
        source_tokenizer: Tokenizer name for sources (``"char"`` or ``"word"``),
            as understood by `seq2seq.vocab.get_tokenizer`.
        target_tokenizer: Tokenizer name for targets.
        train: Training pairs ``(source, target)``.
        valid: Validation pairs, disjoint from train and test by source.
        test: Test pairs, disjoint from train and valid by source.
    """

    name: str
    description: str
    source_tokenizer: str
    target_tokenizer: str
    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]


# --------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------

MAX_NUMBER = 999_999
_THOUSAND = 1_000
_HUNDRED = 100
_TEN = 10
_TEENS_END = 20

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = (None, None, "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _below_hundred_to_words(n: int) -> str:
    """Words for 0 <= n < 100, tens and units joined by a hyphen."""
    if n < _TEENS_END:
        return _UNITS[n]
    tens, units = divmod(n, _TEN)
    return _TENS[tens] if units == 0 else f"{_TENS[tens]}-{_UNITS[units]}"


def _below_thousand_to_words(n: int) -> str:
    """Words for 0 <= n < 1000, without "and"."""
    hundreds, rest = divmod(n, _HUNDRED)
    if hundreds == 0:
        return _below_hundred_to_words(rest)
    words = f"{_UNITS[hundreds]} hundred"
    return words if rest == 0 else f"{words} {_below_hundred_to_words(rest)}"


def number_to_words(n: int) -> str:
    """Spells an integer in lower-case English words.

    Style: no "and", hyphenated tens ("twenty-one"), zero is "zero", e.g.
    ``number_to_words(987654)`` is
    ``"nine hundred eighty-seven thousand six hundred fifty-four"``.

    Args:
        n: Integer in ``0..999_999``.

    Returns:
        The words, separated by single spaces.

    Raises:
        ValueError: If `n` is not an integer in ``0..999_999``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"Expected an integer in 0..{MAX_NUMBER} for `n`. Received: n={n!r}")
    thousands, rest = divmod(n, _THOUSAND)
    if thousands == 0:
        return _below_thousand_to_words(rest)
    words = f"{_below_thousand_to_words(thousands)} thousand"
    return words if rest == 0 else f"{words} {_below_thousand_to_words(rest)}"


def _number_pair(n: int) -> Pair:
    return number_to_words(n), str(n)


# Mixture of number shapes, so that short and round numbers are common in every
# split rather than the ~90% six-digit numbers of a uniform draw.
_NUMBER_SAMPLERS: tuple[tuple[float, Callable[[random.Random], int]], ...] = (
    (0.60, lambda rng: rng.randint(0, MAX_NUMBER)),
    (0.10, lambda rng: rng.randint(0, 999)),  # one to three digits
    (0.10, lambda rng: rng.randint(1_000, 99_999)),  # four or five digits
    (0.08, lambda rng: rng.randint(1, 999) * 1_000),  # "twelve thousand"
    (0.07, lambda rng: rng.randint(1, 999) * 1_000 + rng.randint(1, 99)),
    (0.05, lambda rng: rng.randint(1, 9) * 100_000 + rng.randint(0, 9) * 1_000),
)
_NUMBER_SAMPLER_FNS = tuple(fn for _, fn in _NUMBER_SAMPLERS)
_NUMBER_SAMPLER_WEIGHTS = tuple(weight for weight, _ in _NUMBER_SAMPLERS)

# Every word of the vocabulary ("seven", "forty-two", "hundred", "thousand")
# occurs in these, plus the round numbers the task promises.
_NUMBER_ANCHORS = (*range(_HUNDRED), 100, 1_000, 100_000, 200_000, MAX_NUMBER)


def _draw_number_pair(rng: random.Random) -> Pair:
    sampler = rng.choices(_NUMBER_SAMPLER_FNS, weights=_NUMBER_SAMPLER_WEIGHTS)[0]
    return _number_pair(sampler(rng))


def _number_anchor_pairs() -> list[Pair]:
    return [_number_pair(n) for n in _NUMBER_ANCHORS]


# --------------------------------------------------------------------------
# dates
# --------------------------------------------------------------------------

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)

# Own English names: `calendar.month_name` follows the process locale.
MONTH_NAMES = (
    "January February March April May June July August September October November December"
).split()
WEEKDAY_NAMES = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_ABBREVIATION_LENGTH = 3
_ORDINAL_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}
_ORDINAL_EXCEPTIONS = (11, 12, 13)  # "11th", not "11st"


def _ordinal(day: int) -> str:
    """Day of month with its English ordinal suffix: 1st, 2nd, 3rd, 11th, 22nd."""
    if day % _HUNDRED in _ORDINAL_EXCEPTIONS:
        return f"{day}th"
    return f"{day}{_ORDINAL_SUFFIXES.get(day % _TEN, 'th')}"


def _month(day: datetime.date) -> str:
    return MONTH_NAMES[day.month - 1]


def _month_abbr(day: datetime.date) -> str:
    return _month(day)[:_ABBREVIATION_LENGTH]


def _weekday(day: datetime.date) -> str:
    return WEEKDAY_NAMES[day.weekday()]


# Human date styles. Numeric styles are day-first ("03.11.2017") or year-first
# ("2017/11/03") only, never month-first, so no source is ambiguous.
DATE_STYLES: dict[str, Callable[[datetime.date], str]] = {
    "day_month_year": lambda d: f"{d.day} {_month(d)} {d.year}",
    "month_day_comma_year": lambda d: f"{_month(d)} {d.day}, {d.year}",
    "abbr_month_day_comma_year": lambda d: f"{_month_abbr(d)} {d.day}, {d.year}",
    "lower_day_abbr_month_year": lambda d: f"{d.day} {_month_abbr(d).lower()} {d.year}",
    "lower_weekday_month_day_year": lambda d: (
        f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}".lower()
    ),
    "dotted_day_month_year": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year:04d}",
    "slashed_year_month_day": lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}",
    "ordinal_of_month_year": lambda d: f"{_ordinal(d.day)} of {_month(d)} {d.year}",
    "upper_month_day_year": lambda d: f"{_month(d)} {d.day} {d.year}".upper(),
    "dashed_day_abbr_month_year": lambda d: f"{d.day:02d}-{_month_abbr(d)}-{d.year:04d}",
    "abbr_weekday_day_abbr_month_year": lambda d: (
        f"{_weekday(d)[:_ABBREVIATION_LENGTH]}, {d.day} {_month_abbr(d)} {d.year}"
    ),
}
_DATE_STYLE_NAMES = tuple(DATE_STYLES)
_FIRST_ORDINAL = FIRST_DATE.toordinal()
_LAST_ORDINAL = LAST_DATE.toordinal()
_NUM_DAYS = _LAST_ORDINAL - _FIRST_ORDINAL + 1
_DAYS_PER_WEEK = 7
_ANCHOR_YEAR = 2000


def format_date(day: datetime.date, style: str) -> str:
    """Writes a date in one of the human styles of the ``"dates"`` task.

    Args:
        day: The date.
        style: One of the keys of `DATE_STYLES`, e.g.
            ``"lower_weekday_month_day_year"`` gives
            ``"friday, november 3, 2017"`` for 2017-11-03.

    Returns:
        The date as a human would write it.

    Raises:
        ValueError: If `style` is unknown.
    """
    if style not in DATE_STYLES:
        raise ValueError(
            f"Unknown date style. Received: style={style!r}. Expected one of {_DATE_STYLE_NAMES}"
        )
    return DATE_STYLES[style](day)


def _date_pair(day: datetime.date, style: str) -> Pair:
    return format_date(day, style), day.isoformat()


def _draw_date_pair(rng: random.Random) -> Pair:
    day = datetime.date.fromordinal(rng.randint(_FIRST_ORDINAL, _LAST_ORDINAL))
    return _date_pair(day, rng.choice(_DATE_STYLE_NAMES))


def _date_anchor_pairs() -> list[Pair]:
    """Every month in every style, on days whose weekdays cover the whole week."""
    pairs = []
    for month in range(1, len(MONTH_NAMES) + 1):
        first = datetime.date(_ANCHOR_YEAR, month, 1)
        # Shift the day so that month m falls on weekday m % 7.
        offset = (month % _DAYS_PER_WEEK - first.weekday()) % _DAYS_PER_WEEK
        day = first + datetime.timedelta(days=offset)
        pairs.extend(_date_pair(day, style) for style in _DATE_STYLE_NAMES)
    # "May" is its own abbreviation, so two styles can write the same source.
    return list(dict.fromkeys(pairs))


# --------------------------------------------------------------------------
# Registry and split generation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _TaskSpec:
    """How to generate one task.

    Attributes:
        description: One-line human description.
        source_tokenizer: Tokenizer name for sources.
        target_tokenizer: Tokenizer name for targets.
        population: Number of distinct sources the sampler can produce (an
            upper bound: a few styles coincide for some dates, e.g. in May).
        draw: Draws one random pair.
        anchors: Returns the pairs reserved for the train split.
    """

    description: str
    source_tokenizer: str
    target_tokenizer: str
    population: int
    draw: Callable[[random.Random], Pair]
    anchors: Callable[[], list[Pair]]


_TASKS: dict[str, _TaskSpec] = {
    "numbers": _TaskSpec(
        description="English words of an integer in 0..999999 -> its digits",
        source_tokenizer="word",
        target_tokenizer="char",
        population=MAX_NUMBER + 1,
        draw=_draw_number_pair,
        anchors=_number_anchor_pairs,
    ),
    "dates": _TaskSpec(
        description=(
            f"human-written dates {FIRST_DATE}..{LAST_DATE} in {len(DATE_STYLES)} styles "
            "-> ISO 8601 YYYY-MM-DD"
        ),
        source_tokenizer="char",
        target_tokenizer="char",
        population=_NUM_DAYS * len(DATE_STYLES),
        draw=_draw_date_pair,
        anchors=_date_anchor_pairs,
    ),
}


def _check_size(name: str, value: object, minimum: int) -> int:
    """Returns `value` if it is an integer >= `minimum`, else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive" if minimum > 0 else "a non-negative"
        raise ValueError(f"Expected {kind} integer for `{name}`. Received: {name}={value!r}")
    return value


def _draw_unique(
    rng: random.Random,
    draw: Callable[[random.Random], Pair],
    count: int,
    used: set[str],
) -> list[Pair]:
    """Draws `count` pairs whose sources are not in `used`, adding them to it."""
    pairs: list[Pair] = []
    while len(pairs) < count:
        pair = draw(rng)
        if pair[0] not in used:
            used.add(pair[0])
            pairs.append(pair)
    return pairs


def get_task(
    name: str = DEFAULT_TASK,
    *,
    num_train: int | None = None,
    num_valid: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
) -> Task:
    """Generates a built-in task with disjoint train, valid and test splits.

    Args:
        name: Task name, one of `TASK_NAMES`.
        num_train: Number of training pairs (positive); defaults to
            `DEFAULT_NUM_TRAIN`.
        num_valid: Number of validation pairs (non-negative); defaults to
            `DEFAULT_NUM_VALID`.
        num_test: Number of test pairs (non-negative); defaults to
            `DEFAULT_NUM_TEST`.
        seed: Integer seed; the same `(name, sizes, seed)` always gives the same
            splits, in any process.

    Returns:
        The `Task`. Pairs are unique within each split and the splits are
        disjoint by source string.

    Raises:
        ValueError: If `name` is unknown, a size is not a valid integer, the
            sizes together exceed what the task can generate, or `seed` is not
            an integer.
    """
    if not isinstance(name, str) or name not in _TASKS:
        raise ValueError(f"Unknown task. Received: name={name!r}. Expected one of {TASK_NAMES}")
    spec = _TASKS[name]
    num_train = _check_size("num_train", DEFAULT_NUM_TRAIN if num_train is None else num_train, 1)
    num_valid = _check_size("num_valid", DEFAULT_NUM_VALID if num_valid is None else num_valid, 0)
    num_test = _check_size("num_test", DEFAULT_NUM_TEST if num_test is None else num_test, 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"Expected an integer for `seed`. Received: seed={seed!r}")
    limit = int(spec.population * MAX_POPULATION_FRACTION)
    total = num_train + num_valid + num_test
    if total > limit:
        raise ValueError(
            f"Task {name!r} can generate at most {limit} pairs in all. Received: "
            f"num_train={num_train}, num_valid={num_valid}, num_test={num_test} (total {total})"
        )

    # A string seed is hashed with SHA-512 by `random`, identically in every process.
    rng = random.Random(f"seq2seq.tasks/{name}/{seed}")
    anchors = spec.anchors()
    used = {source for source, _ in anchors}
    # Test first, then valid: the test split does not depend on the other sizes.
    test = _draw_unique(rng, spec.draw, num_test, used)
    valid = _draw_unique(rng, spec.draw, num_valid, used)
    rng.shuffle(anchors)
    train = anchors[: min(len(anchors), int(num_train * MAX_ANCHOR_FRACTION))]
    train += _draw_unique(rng, spec.draw, num_train - len(train), used)
    rng.shuffle(train)
    return Task(
        name=name,
        description=spec.description,
        source_tokenizer=spec.source_tokenizer,
        target_tokenizer=spec.target_tokenizer,
        train=train,
        valid=valid,
        test=test,
    )


def write_tsv(pairs: Iterable[Sequence[str]], path: str | os.PathLike[str]) -> None:
    """Writes pairs as an Anki-style TSV file, ``source<TAB>target`` per line.

    The file is UTF-8 with ``"\\n"`` line ends, written to a temporary file in
    the same folder and moved into place with `os.replace`, so readers never
    see a partial file. Missing parent folders are created.

    Args:
        pairs: ``(source, target)`` string pairs.
        path: Destination file.

    Raises:
        ValueError: If a pair is not two strings, or a field contains a tab or
            a line break (which the format cannot hold). Nothing is written.
    """
    lines = []
    for index, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(field, str) for field in pair):
            raise ValueError(
                f"Expected a (source, target) pair of strings. Received: pairs[{index}]={pair!r}"
            )
        if any(char in field for field in pair for char in "\t\r\n"):
            raise ValueError(
                "Fields of a TSV pair cannot contain tabs or line breaks. "
                f"Received: pairs[{index}]={pair!r}"
            )
        lines.append(f"{pair[0]}\t{pair[1]}\n")

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.writelines(lines)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
