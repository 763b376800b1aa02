"""seq2seq-translate: one source sentence per line in, one translation per line out.

With ``--n_best=N`` (N > 1) every input gives N lines, best first, each
``score TAB translation`` (the score is the hypothesis' log-probability).
"""

from __future__ import annotations

import sys

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

flags.DEFINE_string("input_file", None, "Sources, one per line (default: stdin).")
flags.DEFINE_string("output_file", None, "Where translations go (default: stdout).")
flags.DEFINE_enum(
    "long_input",
    "truncate",
    ["truncate", "error"],
    "Sources longer than the model's max_source_length: truncate them (with a warning) "
    "or stop with an error naming the line.",
)


def read_lines(path: str | None) -> list[str]:
    """Reads UTF-8 lines (stdin for None), without their line endings."""
    if path is None:
        data = sys.stdin.buffer.read()
        source = "<stdin>"
    else:
        with open(path, "rb") as f:
            data = f.read()
        source = path
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(f"{source}:{line}: not valid UTF-8") from None
    # Only "\n" ends a line (as in the data readers): one output line per input line.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def format_hypotheses(hypotheses, n_best: int) -> str:
    """One line per translation (``score TAB text`` lines when ``n_best`` > 1)."""
    lines = []
    for translations in hypotheses:
        for t in translations:
            # One line out per hypothesis, whatever a translation holds.
            text = t.text.replace("\n", " ")
            lines.append(f"{t.score:.4f}\t{text}" if n_best > 1 else text)
    return "".join(line + "\n" for line in lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir:
        fail("--model_dir is required")
    setup_logging()
    from seq2seq.translator import LongInputError, Translator

    source = FLAGS.input_file or "<stdin>"
    try:
        sentences = read_lines(FLAGS.input_file)
        translator = Translator.load(
            FLAGS.model_dir, decode_overrides=decode_overrides(), long_input=FLAGS.long_input
        )
        hypotheses = translator.translate_nbest(sentences, batch_size=FLAGS.batch_size)
        text = format_hypotheses(hypotheses, translator.strategy.num_hypotheses).encode("utf-8")
        if FLAGS.output_file:
            with open(FLAGS.output_file, "wb") as f:
                f.write(text)
        else:
            sys.stdout.buffer.write(text)
            sys.stdout.buffer.flush()
    except LongInputError as error:
        fail(
            f"{source}:{error.index + 1}: {error.length} tokens, more than the model's "
            f"max_source_length={error.limit} (--long_input=error; use truncate to cut it)"
        )
    except user_errors() as error:
        fail(str(error))


def run() -> None:
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
