"""seq2seq-export: writes a model directory as a SavedModel (strings in, translations out)."""

from __future__ import annotations

from absl import app, flags

from seq2seq.cli.common import (
    FLAGS,
    decode_overrides,
    define_decoding_flags,
    fail,
    setup_logging,
    user_errors,
)

define_decoding_flags()
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (a new directory).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir or not FLAGS.export_dir:
        fail("--model_dir and --export_dir are required")
    setup_logging()
    from absl import logging

    from seq2seq.export import export_saved_model
    from seq2seq.translator import Translator

    try:
        translator = Translator.load(FLAGS.model_dir, decode_overrides=decode_overrides())
        path = export_saved_model(translator, FLAGS.export_dir, overwrite=FLAGS.overwrite)
    except user_errors() as error:
        fail(str(error))
    logging.info(
        "Exported %s (decoding: %s) to %s", FLAGS.model_dir, translator.strategy.name, path
    )
    print(path)


def run() -> None:
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
