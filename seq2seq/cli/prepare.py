"""seq2seq-prepare: prepare a local parallel corpus once as a TFDS dataset.

Reads the split files of --corpus_dir (train.tsv or train.SRC + train.TGT,
optionally validation/test; see seq2seq.corpus) and writes the TFDS dataset
seq2seq_corpus/<name> under --tfds_data_dir, which seq2seq-train and
seq2seq-evaluate then load with --tfds=seq2seq_corpus/<name>. Running it again
on the same files reuses the prepared dataset. Prints one JSON object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys

from absl import app, flags, logging

from seq2seq.cli.common import (
    FLAGS,
    define_on_bad_line,
    define_tfds_data_dir,
    fail,
    setup_logging,
    user_errors,
)

define_on_bad_line()
define_tfds_data_dir()
flags.DEFINE_string("corpus_dir", None, "Directory with the split files of the corpus.")
flags.DEFINE_string(
    "name", None, "Corpus name, loaded as --tfds=seq2seq_corpus/NAME (default: the directory's)."
)
flags.DEFINE_string(
    "source_suffix", "source", "Suffix of the source file of aligned pairs (en for train.en)."
)
flags.DEFINE_string("target_suffix", "target", "Suffix of the target file of aligned pairs.")
# allow_override: seq2seq-export has an --overwrite flag too, and both programs
# may be imported into one process (tests).
flags.DEFINE_bool(
    "overwrite",
    False,
    "Prepare again even if the corpus was prepared, replacing it.",
    allow_override=True,
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.corpus_dir:
        fail("--corpus_dir is required")
    setup_logging()
    from seq2seq.corpus import prepare_corpus

    try:
        # TFDS prints its progress on stdout; stdout is kept for the JSON result.
        with contextlib.redirect_stdout(sys.stderr):
            prepared = prepare_corpus(
                FLAGS.corpus_dir,
                FLAGS.name,
                FLAGS.tfds_data_dir,
                source_suffix=FLAGS.source_suffix,
                target_suffix=FLAGS.target_suffix,
                on_bad_line=FLAGS.on_bad_line,
                overwrite=FLAGS.overwrite,
            )
    except user_errors() as error:
        fail(str(error))
    logging.info(
        "Train on it with: seq2seq-train --tfds=%s --tfds_data_dir=%s --model_dir=...",
        prepared.tfds_name,
        prepared.data_dir,
    )
    print(json.dumps(dataclasses.asdict(prepared)))


def run() -> None:
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
