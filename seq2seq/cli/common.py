"""Flags and set-up shared by the command-line programs."""

from __future__ import annotations

import os
import sys

# Keep TensorFlow's C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

flags.DEFINE_string("model_dir", None, "Model directory (config, vocabularies, checkpoints).")
flags.DEFINE_integer("batch_size", None, "Sentences per batch (default: from the config).")


FLAGS = flags.FLAGS


def setup_logging() -> None:
    """Shows INFO messages on stderr without absl's per-line prefix clutter."""
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().use_absl_log_file = False


def define_on_bad_line() -> None:
    """Defines --on_bad_line, for the programs that read sentence-pair files.

    Defining it once only lets several programs be imported into one process.
    """
    if "on_bad_line" in FLAGS:
        return
    flags.DEFINE_enum(
        "on_bad_line",
        "error",
        ["error", "skip"],
        "Malformed data lines: stop with file:line (error) or skip and count them (skip).",
    )


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that are the user's to fix: shown as one message, without a traceback."""
    from seq2seq.checkpoint import TrainingError
    from seq2seq.config import ConfigError
    from seq2seq.readers import DataError
    from seq2seq.vocab import VocabularyError

    return (ConfigError, DataError, VocabularyError, TrainingError, OSError, ValueError)


def fail(message: str, status: int = 1) -> None:
    """Prints ``message`` as an error and exits with ``status`` (no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)
