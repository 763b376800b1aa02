"""seq2seq-evaluate: score a model on held-out pairs; prints one JSON object."""

from __future__ import annotations

import json

from absl import app, flags

from seq2seq import tasks
from seq2seq.cli.common import (
    FLAGS,
    decode_overrides,
    define_decoding_flags,
    define_on_bad_line,
    fail,
    setup_logging,
    user_errors,
)

define_on_bad_line()
define_decoding_flags()
flags.DEFINE_string("test_file", None, "Held-out pairs: TSV (source TAB target).")
flags.DEFINE_enum("task", None, list(tasks.TASK_NAMES), "Score on a built-in task's test split.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir:
        fail("--model_dir is required")
    if bool(FLAGS.test_file) == bool(FLAGS.task):
        fail("give exactly one of --test_file and --task")
    setup_logging()
    from seq2seq.evaluation import evaluate
    from seq2seq.readers import read_tsv
    from seq2seq.translator import Translator

    try:
        if FLAGS.test_file:
            pairs, _ = read_tsv(FLAGS.test_file, on_bad_line=FLAGS.on_bad_line)
        else:
            pairs = tasks.get_task(FLAGS.task).test
        translator = Translator.load(FLAGS.model_dir, decode_overrides=decode_overrides())
        scores = evaluate(translator, pairs, batch_size=FLAGS.batch_size)
    except user_errors() as error:
        fail(str(error))
    print(json.dumps(scores))


def run() -> None:
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
