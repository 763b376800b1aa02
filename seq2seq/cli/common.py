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


def define_seed() -> None:
    """Defines --seed (once, so that several programs can share a process)."""
    if "seed" not in FLAGS:
        flags.DEFINE_integer(
            "seed",
            None,
            "Random seed: data order and initial weights in training, the draws of "
            "sampling in decoding (default: from the config).",
        )


def define_decoding_flags() -> None:
    """Defines the flags that choose and tune the decoding strategy."""
    define_seed()
    if "strategy" in FLAGS:
        return
    flags.DEFINE_enum(
        "strategy",
        None,
        ["greedy", "beam", "sampling"],
        "Decoding strategy (default: beam if --beam_size > 1, sampling if a sampling flag "
        "is given, else the config's).",
    )
    flags.DEFINE_integer("beam_size", None, "Hypotheses kept per sentence by beam search.")
    flags.DEFINE_integer(
        "n_best", None, "Hypotheses written per sentence (beam: the best ones; sampling: samples)."
    )
    flags.DEFINE_float(
        "length_penalty", None, "Beam search length penalty alpha (0: rank by log-probability)."
    )
    flags.DEFINE_float("sampling_temperature", None, "Sampling temperature (> 0).")
    flags.DEFINE_integer("sampling_topk", None, "Sample among the k most probable tokens (0: all).")


DECODING_FLAGS = (
    "strategy",
    "beam_size",
    "n_best",
    "length_penalty",
    "sampling_temperature",
    "sampling_topk",
    "seed",
)


def decode_overrides() -> dict:
    """Returns the ``DecodeConfig`` fields the decoding flags set.

    Without --strategy, --beam_size above 1 means beam search and a sampling
    flag means sampling.

    Raises:
        ValueError: when flags of beam search and of sampling are mixed.
    """
    overrides = {
        name: FLAGS[name].value for name in DECODING_FLAGS if FLAGS[name].value is not None
    }
    beam = (overrides.get("beam_size") or 1) > 1
    sampling = "sampling_temperature" in overrides or "sampling_topk" in overrides
    if "strategy" not in overrides:
        if beam and sampling:
            raise ValueError(
                "--beam_size > 1 asks for beam search, --sampling_* for sampling: pick one "
                "(or name it with --strategy)"
            )
        if beam:
            overrides["strategy"] = "beam"
        elif sampling:
            overrides["strategy"] = "sampling"
    return overrides


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
