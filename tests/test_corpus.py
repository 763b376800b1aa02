"""Local corpora prepared once as the TFDS dataset seq2seq_corpus/<name> and reloaded:
layout, pairs equal to the files, idempotence, bad lines, and seq2seq-prepare."""

import json
import os
import subprocess
import sys

import pytest
from cli_runner import run_cli

from seq2seq.cli import evaluate as evaluate_cli
from seq2seq.cli import prepare as prepare_cli
from seq2seq.cli import train as train_cli
from seq2seq.corpus import find_split_files, prepare_corpus
from seq2seq.datasets import load_tfds, load_tfds_splits
from seq2seq.readers import DataError, read_aligned, read_tsv

# Accents, emoji, CJK, a combining mark, a right-to-left script, a tab-free TSV with an
# attribution column and a blank line: everything must come back as it was read.
TRAIN_TSV = (
    "Go.\tVa !\tCC-BY 2.0 attribution\n"
    "Café crème\tcafé au lait ☕\n"
    "\n"
    "東京\tTōkyō\n"
    "e\u0301t\u00e9\t\u00e9te\u0301\n"
    "שלום\tpeace 😀\n"
)
DEV_EN = "Hello\nGood night\n"
DEV_FR = "Bonjour\nBonne nuit\n"
TEST_TSV = "one\tun\ntwo\tdeux\nthree\ttrois\n"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def corpus(tmp_path):
    """A corpus directory: train.tsv, aligned dev.en + dev.fr, test.tsv and an ignored README."""
    root = tmp_path / "enfr"
    root.mkdir()
    _write(root / "train.tsv", TRAIN_TSV)
    _write(root / "dev.en", DEV_EN)
    _write(root / "dev.fr", DEV_FR)
    _write(root / "test.tsv", TEST_TSV)
    _write(root / "README", "not data\n")
    return root


def test_prepare_and_reload_give_the_pairs_of_the_files(corpus, tmp_path):
    data_dir = str(tmp_path / "tfds")
    prepared = prepare_corpus(corpus, data_dir=data_dir, source_suffix="en", target_suffix="fr")
    assert prepared.tfds_name == "seq2seq_corpus/enfr" and not prepared.reused
    assert prepared.num_examples == {"train": 5, "validation": 2, "test": 3}
    assert prepared.path == os.path.join(data_dir, "seq2seq_corpus", "enfr", "1.0.0")
    assert "5 pairs, 1 blank line ignored" in prepared.reports["train"]

    splits = load_tfds_splits(prepared.tfds_name, data_dir=data_dir, download=False)
    assert splits.train == read_tsv(corpus / "train.tsv")[0]
    assert splits.validation == read_aligned(corpus / "dev.en", corpus / "dev.fr")[0]
    assert splits.test == read_tsv(corpus / "test.tsv")[0]
    assert ("e\u0301t\u00e9", "\u00e9te\u0301") in splits.train  # not normalised
    assert ("שלום", "peace 😀") in splits.train
    # A slice of a split, and the dataset turned around.
    pairs, _ = load_tfds(prepared.tfds_name, "test[1:]", data_dir=data_dir, source_key="target")
    assert pairs == [("deux", "two"), ("trois", "three")]

    files_before = {
        name: os.stat(os.path.join(prepared.path, name)).st_mtime_ns
        for name in os.listdir(prepared.path)
    }
    again = prepare_corpus(corpus, data_dir=data_dir, source_suffix="en", target_suffix="fr")
    assert again.reused and again.num_examples == prepared.num_examples
    assert again.reports == prepared.reports
    files_after = {
        name: os.stat(os.path.join(prepared.path, name)).st_mtime_ns
        for name in os.listdir(prepared.path)
    }
    assert files_after == files_before


def test_changed_files_need_overwrite(corpus, tmp_path):
    data_dir = str(tmp_path / "tfds")
    prepare_corpus(corpus, "toy", data_dir)  # No aligned pair with the default suffixes.
    _write(corpus / "test.tsv", TEST_TSV + "four\tquatre\n")
    with pytest.raises(DataError, match=r"changed test: test.tsv.*--overwrite"):
        prepare_corpus(corpus, "toy", data_dir)
    assert len(load_tfds("seq2seq_corpus/toy", "test", data_dir=data_dir)[0]) == 3
    prepared = prepare_corpus(corpus, "toy", data_dir, overwrite=True)
    assert not prepared.reused and prepared.num_examples == {"train": 5, "test": 4}


def test_bad_line_names_file_and_line_and_prepares_nothing(corpus, tmp_path):
    data_dir = str(tmp_path / "tfds")
    _write(corpus / "test.tsv", "one\tun\nno tab here\n\tempty source\n")
    with pytest.raises(
        DataError, match=f"{corpus / 'test.tsv'}:2: no tab between source and target"
    ):
        prepare_corpus(corpus, "bad", data_dir)
    with pytest.raises(DataError, match="no prepared corpus 'bad'.*seq2seq-prepare"):
        load_tfds("seq2seq_corpus/bad", "train", data_dir=data_dir)
    prepared = prepare_corpus(corpus, "bad", data_dir, on_bad_line="skip")
    assert prepared.num_examples["test"] == 1
    assert "2 bad lines skipped (lines 2, 3)" in prepared.reports["test"]
    # Bad lines in a replacement leave the prepared corpus as it was.
    _write(corpus / "train.tsv", "ok\tok\nbad\n")
    with pytest.raises(DataError, match="train.tsv:2"):
        prepare_corpus(corpus, "bad", data_dir, on_bad_line="error", overwrite=True)
    assert load_tfds("seq2seq_corpus/bad", "test", data_dir=data_dir)[0] == [("one", "un")]


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"README": "x"}, "no training data: expected train.tsv, or train.source + train.target"),
        (
            {"train.tsv": "a\tb\n", "val.tsv": "a\tb\n", "dev.tsv": "a\tb\n"},
            "validation data given twice: val.tsv and dev.tsv",
        ),
        ({"train.source": "a\n"}, "train.source has no aligned partner train.target"),
        (
            {"train.tsv": "a\tb\n", "train.source": "a\n", "train.target": "b\n"},
            "train data given twice",
        ),
    ],
)
def test_corpus_layout_errors(tmp_path, files, needle):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(DataError) as error:
        find_split_files(tmp_path)
    assert str(error.value).startswith(f"{tmp_path}: ") and needle in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "a/b"}, "corpus name"),
        ({"source_suffix": "tsv"}, "source_suffix"),
        ({"source_suffix": "en", "target_suffix": "en"}, "different suffixes"),
    ],
)
def test_invalid_settings_are_named(corpus, tmp_path, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        prepare_corpus(corpus, data_dir=tmp_path / "tfds", **kwargs)


def test_prepare_train_evaluate_programs(corpus, tmp_path, capfd):
    data_dir = str(tmp_path / "tfds")
    args = [
        f"--corpus_dir={corpus}",
        f"--tfds_data_dir={data_dir}",
        "--source_suffix=en",
        "--target_suffix=fr",
    ]
    status, out, err = run_cli(prepare_cli, args, capfd)
    assert status == 0, err[-2000:]
    result = json.loads(out)  # stdout holds the JSON only (TFDS progress goes to stderr)
    assert result["tfds_name"] == "seq2seq_corpus/enfr" and not result["reused"]

    model_dir = str(tmp_path / "model")
    tfds_args = ["--tfds=seq2seq_corpus/enfr", f"--tfds_data_dir={data_dir}"]
    tiny = ["--cell=gru", "--units=4", "--epochs=1", "--batch_size=4", "--num_samples=1"]
    status, out, err = run_cli(train_cli, [*tfds_args, f"--model_dir={model_dir}", *tiny], capfd)
    assert status == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["num_examples"] == 3  # the test split

    status, out, err = run_cli(
        evaluate_cli, [f"--model_dir={model_dir}", *tfds_args, "--split=validation"], capfd
    )
    assert status == 0, err[-2000:]
    assert json.loads(out)["num_examples"] == 2

    status, out, err = run_cli(
        train_cli,
        ["--tfds=seq2seq_corpus/other", f"--tfds_data_dir={data_dir}", f"--model_dir={model_dir}"],
        capfd,
    )
    assert status == 1 and "error: no prepared corpus 'other'" in err


def test_prepare_program_in_a_subprocess_reuses_the_second_time(corpus, tmp_path):
    command = [
        sys.executable,
        "-m",
        "seq2seq.cli.prepare",
        f"--corpus_dir={corpus}",
        "--name=sub",
        f"--tfds_data_dir={tmp_path / 'tfds'}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = [
        subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (json.loads(run.stdout) for run in runs)
    assert (first["reused"], second["reused"]) == (False, True)
    assert first["num_examples"] == second["num_examples"] == {"train": 5, "test": 3}
