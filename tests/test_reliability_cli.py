"""Bad data, bad input and bad models through the command-line programs.

The programs run in-process here (flags parsed, ``main`` called, its exit
status and output captured), so the many cases stay fast; tests/test_cli.py
and tests/test_reliability_resume.py run them as real subprocesses. Every
failure must be one ``error: ...`` line naming the file (and line), exit
status 1, and no traceback.
"""

import json
import logging
import os

import pytest
from cli_runner import run_main as run_cli
from model_dirs import write_untrained_model_dir

from seq2seq.cli import train as train_cli
from seq2seq.cli import translate as translate_cli
from seq2seq.training import BEST_MODEL_FILENAME, STATE_FILENAME
from seq2seq.vocab import Vocabulary

GOOD_LINES = [f"{w}\t{w[::-1]}\n".encode() for w in ("abc", "bcd", "cab", "dab", "bad", "cad")]
TINY_MODEL = ["--cell=gru", "--units=4", "--epochs=1", "--batch_size=4", "--num_samples=1"]


@pytest.fixture
def output(capfd, caplog):
    """Reads what a program wrote: (stdout, stderr + log records; absl logs via `logging`)."""
    caplog.set_level(logging.INFO)

    def read():
        out, err = capfd.readouterr()
        return out, err + caplog.text

    return read


def _assert_clean_error(status, err, *needles):
    assert status == 1, err[-2000:]
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, err[-2000:]
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (b"no tab here", "no tab between source and target"),
        (b"\tcba", "empty source sentence"),
        (b"abc\t   ", "empty target sentence"),
        (b"ab\xffc\tcba", "invalid UTF-8"),
    ],
    ids=["no_tab", "empty_source", "empty_target", "invalid_utf8"],
)
def test_train_bad_line_error_names_file_and_line(tmp_path, output, bad_line, reason):
    data = tmp_path / "train.tsv"
    data.write_bytes(b"".join(GOOD_LINES[:2]) + bad_line + b"\n" + b"".join(GOOD_LINES[2:]))
    status, _, err = run_cli(
        train_cli, [f"--train_file={data}", f"--model_dir={tmp_path / 'm'}", *TINY_MODEL], output
    )
    _assert_clean_error(status, err, f"{data}:3: {reason}")


@pytest.mark.parametrize(
    ("content", "on_bad_line", "needle"),
    [
        (b"", "error", "contains no sentence pairs"),
        (b"\xef\xbb\xbf\r\n\n", "error", "contains no sentence pairs (2 blank lines)"),
        (b"bad\n\tx\n", "skip", "contains no sentence pairs (2 bad lines skipped)"),
        (None, "error", "No such file"),
    ],
    ids=["empty_file", "bom_and_blank_only", "only_bad_lines_skipped", "missing_file"],
)
def test_train_unusable_file_is_one_error_line(tmp_path, output, content, on_bad_line, needle):
    data = tmp_path / "train.tsv"
    if content is not None:
        data.write_bytes(content)
    status, _, err = run_cli(
        train_cli,
        [f"--train_file={data}", f"--model_dir={tmp_path / 'm'}", f"--on_bad_line={on_bad_line}"],
        output,
    )
    _assert_clean_error(status, err, str(data), needle)


def test_train_all_pairs_too_long_is_one_error_line(tmp_path, output):
    data = tmp_path / "train.tsv"
    data.write_bytes(b"".join(GOOD_LINES))
    args = [f"--train_file={data}", f"--model_dir={tmp_path / 'm'}", "--max_source_length=2"]
    status, _, err = run_cli(train_cli, [*args, *TINY_MODEL], output)
    _assert_clean_error(status, err, "No training pair left", "longer than the length limit")
    assert f"{data}: 6 training pairs are longer than max_source_length=2" in err


def test_train_skip_mode_reports_every_kind_of_bad_line_and_trains(tmp_path, output):
    lines = [
        b"\xef\xbb\xbfabc\tcba\r\n",  # 1: BOM and a Windows line end: fine
        b"no tab\n",  # 2: bad
        b"bcd\tdcb\tCC-BY attribution\n",  # 3: extra column, ignored and counted
        b"\tx\n",  # 4: bad, empty source
        b"cab\t \n",  # 5: bad, empty target
        b"d\xe9a\tad\n",  # 6: bad, Latin-1 byte
        b"\n",  # 7: blank
        b"dabcabcabcab\tx\n",  # 8: longer than --max_source_length=8
        *GOOD_LINES[3:],  # 9-11
        b"dab\tbad\tthird\tfourth",  # 12: extra columns, no final newline
    ]
    data = tmp_path / "train.tsv"
    data.write_bytes(b"".join(lines))
    model_dir = tmp_path / "m"
    args = [f"--train_file={data}", f"--model_dir={model_dir}", "--on_bad_line=skip"]
    status, out, err = run_cli(train_cli, [*args, "--max_source_length=8", *TINY_MODEL], output)
    assert status == 0, err[-3000:]
    assert (
        f"{data}: 7 pairs, 4 bad lines skipped (lines 2, 4, 5, 6), 1 blank line ignored, "
        "columns after the target ignored on 2 lines"
    ) in err
    assert f"{data}: 1 training pairs are longer than max_source_length=8" in err
    assert "(lines 8)" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["epochs"] == 1


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return write_untrained_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def test_translate_odd_input_gives_one_line_per_line(tiny_model_dir, tmp_path, output):
    sources = ["abc", "", "   ", "Ωmega ☃ 😀", "e\u0301\u0301", "👩‍👩‍👧", "x" * 500, "\t"]
    input_file, output_file = tmp_path / "in.txt", tmp_path / "out.txt"
    input_file.write_bytes("\ufeff".encode() + "\r\n".join(sources).encode() + b"\n")
    args = [f"--model_dir={tiny_model_dir}", f"--input_file={input_file}"]
    status, _, err = run_cli(translate_cli, [*args, f"--output_file={output_file}"], output)
    assert status == 0, err[-3000:]
    assert output_file.read_bytes().count(b"\n") == len(sources)
    assert "1 input(s) longer than max_source_length=12 tokens were truncated" in err


def test_translate_long_input_error_names_line(tiny_model_dir, tmp_path, output):
    input_file = tmp_path / "in.txt"
    input_file.write_text("abc\n" + "a" * 13 + "\n")
    args = [f"--model_dir={tiny_model_dir}", f"--input_file={input_file}", "--long_input=error"]
    status, out, err = run_cli(translate_cli, args, output)
    _assert_clean_error(status, err, f"{input_file}:2: 13 tokens", "max_source_length=12")
    assert out == ""


def _break_model_dir(model_dir, fault):
    """Applies one fault to a model directory; returns the file the error must name."""
    path = {
        "config_missing": "config.json",
        "config_garbage": "config.json",
        "config_newer": "config.json",
        "vocab_missing": "source_vocab.json",
        "vocab_garbage": "target_vocab.json",
        "vocab_other_size": "target_vocab.json",
        "model_missing": BEST_MODEL_FILENAME,
        "model_truncated": BEST_MODEL_FILENAME,
        "model_garbage": BEST_MODEL_FILENAME,
    }[fault]
    full = os.path.join(model_dir, path)
    if fault.endswith("missing"):
        os.unlink(full)
    elif fault.endswith("garbage"):
        with open(full, "wb") as f:
            f.write(b"\x00garbage{\xff")
    elif fault == "config_newer":
        with open(full) as f:
            data = json.load(f)
        with open(full, "w") as f:
            json.dump({**data, "version": data["version"] + 1}, f)
    elif fault == "vocab_other_size":
        Vocabulary.build(["abcdefghijklmnop"], "char").save(full)
    elif fault == "model_truncated":
        with open(full, "rb") as f:
            data = f.read()
        with open(full, "wb") as f:
            f.write(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "fault",
    [
        "config_missing",
        "config_garbage",
        "config_newer",
        "vocab_missing",
        "vocab_garbage",
        "vocab_other_size",
        "model_missing",
        "model_truncated",
        "model_garbage",
    ],
)
def test_translate_broken_model_dir_names_the_file(tmp_path, output, fault):
    model_dir = write_untrained_model_dir(tmp_path / "model")
    name = _break_model_dir(model_dir, fault)
    input_file = tmp_path / "in.txt"
    input_file.write_text("abc\n")
    args = [f"--model_dir={model_dir}", f"--input_file={input_file}"]
    status, out, err = run_cli(translate_cli, args, output)
    _assert_clean_error(status, err, name)
    assert out == ""


def test_train_nan_loss_is_one_error_line_and_keeps_files_loadable(tmp_path, output):
    data = tmp_path / "train.tsv"
    data.write_bytes(b"".join(GOOD_LINES * 4))
    model_dir = tmp_path / "m"
    args = [f"--train_file={data}", f"--model_dir={model_dir}", "--learning_rate=1e38"]
    status, _, err = run_cli(train_cli, [*args, *TINY_MODEL], output)
    _assert_clean_error(status, err, "Training diverged", "epoch 1", "learning_rate=1e+38")
    assert not os.path.exists(model_dir / STATE_FILENAME)  # no epoch was committed
    assert not os.path.exists(model_dir / BEST_MODEL_FILENAME)


def test_train_ctrl_c_is_a_message_with_resume_hint(tmp_path, output, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("seq2seq.training.train", interrupted)
    data = tmp_path / "train.tsv"
    data.write_bytes(b"".join(GOOD_LINES))
    args = [f"--train_file={data}", f"--model_dir={tmp_path / 'm'}", *TINY_MODEL]
    status, _, err = run_cli(train_cli, args, output)
    assert status == 130 and "Traceback" not in err
    assert "error: interrupted; run the same command to resume" in err
