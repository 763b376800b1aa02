"""Flags and set-up shared by the command-line programs."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

# Keep TensorFlow's C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

flags.DEFINE_string("model_dir", None, "Model directory (config, vocabularies, checkpoints).")
flags.DEFINE_integer("batch_size", None, "Sentences per batch (default: from the config).")


FLAGS = flags.FLAGS

if TYPE_CHECKING:
    from seq2seq.datasets import ExampleReport
    from seq2seq.readers import ReadReport


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


def define_test_file() -> None:
    """Defines --test_file (once, for seq2seq-train and seq2seq-evaluate)."""
    if "test_file" not in FLAGS:
        flags.DEFINE_string("test_file", None, "Held-out pairs to score: TSV (source TAB target).")


def define_task() -> None:
    """Defines --task (once, for seq2seq-train and seq2seq-evaluate)."""
    from seq2seq import tasks

    if "task" not in FLAGS:
        flags.DEFINE_enum(
            "task",
            None,
            list(tasks.TASK_NAMES),
            "Built-in task: trained on by default; scored on its test split.",
        )


def define_tfds_data_dir() -> None:
    """Defines --tfds_data_dir (once, for the programs that read or write TFDS datasets)."""
    if "tfds_data_dir" not in FLAGS:
        flags.DEFINE_string(
            "tfds_data_dir",
            None,
            "TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).",
        )


TFDS_OPTION_FLAGS = ("tfds_data_dir", "tfds_source_key", "tfds_target_key")


def define_tfds_flags() -> None:
    """Defines --tfds and its options (once, for seq2seq-train and seq2seq-evaluate)."""
    define_tfds_data_dir()
    if "tfds" in FLAGS:
        return
    flags.DEFINE_string(
        "tfds",
        None,
        "TFDS dataset NAME/CONFIG (e.g. ted_hrlr_translate/pt_to_en, or seq2seq_corpus/NAME "
        "for a corpus prepared by seq2seq-prepare).",
    )
    flags.DEFINE_string(
        "tfds_source_key",
        None,
        "Feature of the TFDS examples holding the source (default: the first supervised key).",
    )
    flags.DEFINE_string(
        "tfds_target_key",
        None,
        "Feature of the TFDS examples holding the target (default: the second supervised key).",
    )


def tfds_options() -> dict:
    """Returns the keyword arguments of ``seq2seq.datasets.load_tfds`` set by the --tfds_* flags.

    Raises:
        ValueError: if a --tfds_* flag is given without --tfds.
    """
    given = [f"--{name}" for name in TFDS_OPTION_FLAGS if FLAGS[name].value is not None]
    if given and not FLAGS.tfds:
        raise ValueError(f"{', '.join(given)} only applies with --tfds.")
    return {
        "data_dir": FLAGS.tfds_data_dir,
        "source_key": FLAGS.tfds_source_key,
        "target_key": FLAGS.tfds_target_key,
        "on_bad_line": FLAGS.on_bad_line,
    }


def log_data_report(report: ReadReport | ExampleReport) -> None:
    """Logs a reader's report (``ReadReport`` or ``ExampleReport``); skipped data as a warning."""
    if report.num_skipped:
        logging.warning("%s", report.summary())
    else:
        logging.info("%s", report.summary())


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
