"""seq2seq-evaluate: score a model on held-out pairs, or a file of translations; prints one JSON object.

With --model_dir it translates the pairs of --test_file, --task or --tfds and
scores the model (teacher-forced loss and accuracy, exact match, BLEU, chrF).
With --hypotheses it scores translations already written (e.g. by
seq2seq-translate) against --references or the targets of --test_file,
without a model.
"""

from __future__ import annotations

import json

from absl import app, flags

from seq2seq import tasks
from seq2seq.cli.common import (
    DECODING_FLAGS,
    FLAGS,
    decode_overrides,
    define_decoding_flags,
    define_on_bad_line,
    define_task,
    define_test_file,
    define_tfds_flags,
    fail,
    log_data_report,
    setup_logging,
    tfds_options,
    user_errors,
)
from seq2seq.evaluation import BLEU_TOKENIZE, BLEU_TOKENIZERS

define_on_bad_line()
define_decoding_flags()
define_test_file()
define_task()
define_tfds_flags()
flags.DEFINE_string("split", None, "TFDS split to score with --tfds, e.g. test or test[:500].")
flags.DEFINE_string(
    "hypotheses",
    None,
    "Translations to score without a model, one per line (with --references or --test_file).",
)
flags.DEFINE_string("references", None, "References of --hypotheses, one per line.")
flags.DEFINE_enum(
    "bleu_tokenize", BLEU_TOKENIZE, list(BLEU_TOKENIZERS), "sacrebleu tokenizer of BLEU."
)
flags.DEFINE_bool("lowercase", False, "Score case-insensitively (BLEU, chrF, exact match).")

DEFAULT_SPLIT = "test"


def score_hypotheses() -> dict:
    """Scores --hypotheses against --references or --test_file (no model)."""
    from seq2seq.evaluation import score_files

    if FLAGS.model_dir:
        raise ValueError(
            "--hypotheses scores a file of translations without a model; drop --model_dir."
        )
    tfds_options()  # Refuses --tfds_* flags: they need --tfds.
    model_flags = [
        f"--{name}" for name in ("batch_size", *DECODING_FLAGS) if FLAGS[name].value is not None
    ]
    if model_flags:
        raise ValueError(f"{', '.join(model_flags)} only applies with --model_dir.")
    if FLAGS.task or FLAGS.tfds or FLAGS.split:
        raise ValueError(
            "With --hypotheses, give the references with --references or --test_file "
            "(not --task, --tfds or --split)."
        )
    if bool(FLAGS.references) == bool(FLAGS.test_file):
        raise ValueError("With --hypotheses, give exactly one of --references and --test_file.")
    return score_files(
        FLAGS.hypotheses,
        FLAGS.references,
        test_file=FLAGS.test_file,
        on_bad_line=FLAGS.on_bad_line,
        bleu_tokenize=FLAGS.bleu_tokenize,
        lowercase=FLAGS.lowercase,
    )


def load_pairs() -> list[tuple[str, str]]:
    """Reads the held-out pairs of --test_file, --task or --tfds (with --split)."""
    from seq2seq.readers import read_tsv

    options = tfds_options()
    if FLAGS.split is not None and not FLAGS.tfds:
        raise ValueError("--split only applies with --tfds.")
    if FLAGS.test_file:
        pairs, report = read_tsv(FLAGS.test_file, on_bad_line=FLAGS.on_bad_line)
        log_data_report(report)
        return pairs
    if FLAGS.tfds:
        from seq2seq.datasets import load_tfds

        pairs, report = load_tfds(FLAGS.tfds, FLAGS.split or DEFAULT_SPLIT, **options)
        log_data_report(report)
        return pairs
    return tasks.get_task(FLAGS.task).test


def score_model() -> dict:
    """Translates the held-out pairs with --model_dir and scores the model."""
    from seq2seq.evaluation import evaluate
    from seq2seq.translator import Translator

    pairs = load_pairs()
    translator = Translator.load(FLAGS.model_dir, decode_overrides=decode_overrides())
    return evaluate(
        translator,
        pairs,
        batch_size=FLAGS.batch_size,
        bleu_tokenize=FLAGS.bleu_tokenize,
        lowercase=FLAGS.lowercase,
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    if FLAGS.references and not FLAGS.hypotheses:
        fail("--references goes with --hypotheses (the translations to score)")
    if not FLAGS.hypotheses:
        if not FLAGS.model_dir:
            fail("--model_dir is required (or --hypotheses, to score a file of translations)")
        if sum(bool(value) for value in (FLAGS.test_file, FLAGS.task, FLAGS.tfds)) != 1:
            fail("give exactly one of --test_file, --task and --tfds")
    setup_logging()
    try:
        scores = score_hypotheses() if FLAGS.hypotheses else score_model()
    except user_errors() as error:
        fail(str(error))
    print(json.dumps(scores))


def run() -> None:
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
