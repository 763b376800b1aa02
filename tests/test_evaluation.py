"""Scoring translations: BLEU and chrF as sacrebleu computes them, exact match, signatures,
files of hypotheses and references, and seq2seq-evaluate without a model."""

import json
import math
import os
import subprocess
import sys

import pytest
import sacrebleu
from absl import flags
from cli_runner import run_cli
from model_dirs import write_untrained_model_dir

from seq2seq.cli import evaluate as evaluate_cli
from seq2seq.evaluation import (
    BLEU_TOKENIZERS,
    evaluate,
    read_sentences,
    score_files,
    score_translations,
)
from seq2seq.readers import DataError
from seq2seq.translator import Translator

HYPOTHESES = [
    "The cat sat on the mat.",
    "Il pleut des cordes aujourd'hui!",
    "東京は日本の首都です。",
    "a completely different sentence",
]
REFERENCES = [
    "The cat sat on the mat.",
    "Il pleut à verse aujourd'hui !",
    "東京は日本の首都である。",
    "nothing in common here at all",
]
SCORE_KEYS = (
    "num_examples",
    "exact_match",
    "bleu",
    "chrf",
    "bleu_tokenize",
    "lowercase",
    "bleu_signature",
    "chrf_signature",
)


@pytest.mark.parametrize("tokenize", ["13a", "intl", "char", "none", "zh"])
def test_scores_are_sacrebleu_corpus_scores(tokenize):
    scores = score_translations(HYPOTHESES, REFERENCES, bleu_tokenize=tokenize)
    expected_bleu = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize=tokenize).score
    expected_chrf = sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score
    assert scores["bleu"] == pytest.approx(expected_bleu, abs=1e-9)
    assert scores["chrf"] == pytest.approx(expected_chrf, abs=1e-9)
    assert scores["exact_match"] == 0.25
    assert scores["num_examples"] == 4
    assert scores["bleu_tokenize"] == tokenize
    assert f"tok:{tokenize}" in scores["bleu_signature"]
    assert "nrefs:1" in scores["bleu_signature"] and "case:mixed" in scores["bleu_signature"]
    assert scores["chrf_signature"].startswith("nrefs:1|case:mixed|")
    assert tuple(scores) == SCORE_KEYS


def test_tokenization_changes_bleu():
    by_tokenize = {
        tokenize: score_translations(HYPOTHESES, REFERENCES, bleu_tokenize=tokenize)["bleu"]
        for tokenize in ("13a", "char")
    }
    assert by_tokenize["13a"] != by_tokenize["char"]


def test_lowercase_scores_ignore_case():
    hypotheses, references = ["Hello World", "good Day to you"], ["hello world", "Good day to you"]
    cased = score_translations(hypotheses, references)
    scores = score_translations(hypotheses, references, lowercase=True)
    assert cased["exact_match"] == 0.0 and scores["exact_match"] == 1.0
    expected = sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score
    assert scores["bleu"] == pytest.approx(expected) == pytest.approx(100.0)
    assert scores["lowercase"] is True
    assert "case:lc" in scores["bleu_signature"] and "case:lc" in scores["chrf_signature"]


def test_unknown_tokenizer_names_the_flag_and_lists_the_choices():
    with pytest.raises(ValueError, match="bleu_tokenize") as error:
        score_translations(["a"], ["a"], bleu_tokenize="moses")
    message = str(error.value)
    assert "--bleu_tokenize" in message and "'moses'" in message
    for choice in ("'none'", "'13a'", "'intl'", "'char'"):
        assert choice in message
    assert {"none", "13a", "intl", "char"} <= set(BLEU_TOKENIZERS)


@pytest.mark.parametrize(
    ("hypotheses", "references", "needle"),
    [(["a", "b"], ["a"], "2 hypotheses, 1 references"), ([], [], "at least one")],
)
def test_score_translations_refuses_unaligned_or_empty_lists(hypotheses, references, needle):
    with pytest.raises(ValueError, match=needle):
        score_translations(hypotheses, references)


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_score_files_with_references_file_equals_scoring_the_lists(tmp_path):
    hypotheses = _write_lines(tmp_path / "hyp.txt", HYPOTHESES)
    references = tmp_path / "ref.txt"
    # A byte order mark, CRLF line ends and surrounding spaces are not part of a sentence.
    references.write_bytes(
        b"\xef\xbb\xbf" + "".join(f" {r}\r\n" for r in REFERENCES).encode("utf-8")
    )
    scores = score_files(hypotheses, references, bleu_tokenize="intl")
    assert scores == score_translations(HYPOTHESES, REFERENCES, bleu_tokenize="intl")


def test_score_files_line_count_mismatch_names_both_files_and_counts(tmp_path):
    hypotheses = _write_lines(tmp_path / "hyp.txt", HYPOTHESES)
    references = _write_lines(tmp_path / "ref.txt", REFERENCES[:3])
    with pytest.raises(DataError) as error:
        score_files(hypotheses, references)
    message = str(error.value)
    assert f"{hypotheses} has 4" in message and f"{references} has 3" in message


def test_score_files_against_a_test_file_lines_up_hypotheses_with_tsv_lines(tmp_path):
    # Line 2 is blank and line 4 is bad: `cut -f1 test.tsv | seq2seq-translate` still
    # writes a line for each, and those are left out.
    test_file = tmp_path / "test.tsv"
    test_file.write_text("un\tone\n\ndeux\ttwo\nno tab\ntrois\tthree\textra\n", encoding="utf-8")
    per_line = _write_lines(tmp_path / "per_line.txt", ["one", "", "deux", "?", "three"])
    scores = score_files(per_line, test_file=test_file, on_bad_line="skip")
    assert scores == score_translations(["one", "deux", "three"], ["one", "two", "three"])
    per_pair = _write_lines(tmp_path / "per_pair.txt", ["one", "deux", "three"])
    assert score_files(per_pair, test_file=test_file, on_bad_line="skip") == scores
    wrong = _write_lines(tmp_path / "wrong.txt", ["one", "two"])
    with pytest.raises(
        DataError, match=r"wrong.txt has 2 lines, .*test.tsv has 5 lines \(3 pairs\)"
    ):
        score_files(wrong, test_file=test_file, on_bad_line="skip")
    with pytest.raises(DataError, match="test.tsv:4: no tab"):
        score_files(per_line, test_file=test_file)


def test_read_sentences_reports_invalid_utf8_with_file_and_line(tmp_path):
    path = tmp_path / "hyp.txt"
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(DataError, match=f"{path}:2: not valid UTF-8"):
        read_sentences(path)
    path.write_bytes("a\u2028b\r\n\n".encode())
    assert read_sentences(path) == ["a\u2028b", ""]


def test_evaluate_scores_translations_through_score_translations(tmp_path):
    model_dir = write_untrained_model_dir(tmp_path / "model")
    translator = Translator.load(model_dir)
    pairs = [("abc de", "ed cba"), ("hello", "olleh"), ("éa", "aé")]
    scores = evaluate(translator, pairs, bleu_tokenize="char", lowercase=True)
    hypotheses = translator.translate([source for source, _ in pairs])
    expected = score_translations(
        hypotheses, [target for _, target in pairs], bleu_tokenize="char", lowercase=True
    )
    assert {key: scores[key] for key in expected} == expected
    assert scores["strategy"] == "greedy" and "loss" in scores and "token_accuracy" in scores
    with pytest.raises(ValueError, match="--bleu_tokenize"):
        evaluate(translator, pairs, bleu_tokenize="bad")


@pytest.fixture
def files(tmp_path):
    return (
        _write_lines(tmp_path / "hyp.txt", HYPOTHESES),
        _write_lines(tmp_path / "ref.txt", REFERENCES),
        _write_lines(tmp_path / "short.txt", REFERENCES[:2]),
    )


def test_evaluate_cli_scores_hypotheses_without_a_model(files, capfd):
    hypotheses, references, _ = files
    status, out, err = run_cli(
        evaluate_cli,
        [f"--hypotheses={hypotheses}", f"--references={references}", "--bleu_tokenize=intl"],
        capfd,
    )
    assert status == 0, err[-2000:]
    scores = json.loads(out)
    assert tuple(scores) == SCORE_KEYS
    assert scores["bleu_tokenize"] == "intl" and "tok:intl" in scores["bleu_signature"]
    assert scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize="intl").score
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--hypotheses={hyp}", "--references={short}"], "{hyp} has 4, {short} has 2"),
        (["--hypotheses={hyp}"], "exactly one of --references and --test_file"),
        (["--hypotheses={hyp}", "--references={ref}", "--model_dir=m"], "drop --model_dir"),
        (["--hypotheses={hyp}", "--references={ref}", "--beam_size=3"], "--beam_size"),
        (["--references={ref}", "--model_dir=m", "--task=numbers"], "--references goes with"),
        (["--model_dir=m", "--task=numbers", "--split=test"], "--split only applies with --tfds"),
        (["--model_dir=m", "--task=numbers", "--tfds_data_dir=d"], "--tfds_data_dir"),
        (["--model_dir=m", "--task=numbers", "--tfds=x/y"], "exactly one of --test_file"),
    ],
)
def test_evaluate_cli_errors_are_one_line(files, capfd, args, needle):
    hyp, ref, short = files
    names = {"hyp": hyp, "ref": ref, "short": short}
    args = [arg.format(**names) for arg in args]
    status, out, err = run_cli(evaluate_cli, args, capfd)
    assert status == 1 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle.format(**names) in errors[0], err[-2000:]


def test_evaluate_cli_rejects_an_unknown_tokenizer_listing_the_choices():
    with pytest.raises(flags.IllegalFlagValueError, match="--bleu_tokenize=moses") as error:
        flags.FLAGS(["evaluate", "--bleu_tokenize=moses"])
    flags.FLAGS.unparse_flags()
    assert "13a" in str(error.value) and "intl" in str(error.value)


def test_evaluate_program_scores_hypotheses_in_a_subprocess(files):
    hypotheses, _, _ = files
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seq2seq.cli.evaluate",
            f"--hypotheses={hypotheses}",
            f"--references={hypotheses}",
            "--lowercase",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    scores = json.loads(run.stdout)
    assert scores["exact_match"] == 1.0 and scores["bleu"] == pytest.approx(100.0)
    assert scores["lowercase"] is True and "case:lc" in scores["bleu_signature"]


def test_evaluate_loss_and_perplexity_leave_label_smoothing_out(tmp_path):
    translator = Translator.load(write_untrained_model_dir(tmp_path / "model"))
    pairs = [("abc de", "ed cba"), ("hello", "olleh")]
    plain = evaluate(translator, pairs)
    translator.config.train.label_smoothing = 0.3  # as a model trained with it
    smoothed_run = evaluate(translator, pairs)
    assert smoothed_run["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert smoothed_run["perplexity"] == pytest.approx(math.exp(plain["loss"]), rel=1e-6)
