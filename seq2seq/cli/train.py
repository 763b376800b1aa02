"""seq2seq-train: train a model on a TSV file, two aligned files, a TFDS dataset or a built-in task.

With no data flag it trains the built-in default task, then prints sample
translations of held-out sentences and their exact match.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from absl import app, flags, logging

from seq2seq import config as config_lib
from seq2seq import tasks
from seq2seq.cli.common import (
    FLAGS,
    define_on_bad_line,
    define_seed,
    define_task,
    define_test_file,
    define_tfds_flags,
    fail,
    log_data_report,
    setup_logging,
    tfds_options,
    user_errors,
)
from seq2seq.datasets import ExampleReport
from seq2seq.readers import MAX_REPORTED_LINES, ReadReport, read_aligned, read_tsv
from seq2seq.vocab import get_tokenizer

define_on_bad_line()
define_seed()
define_test_file()
define_task()
define_tfds_flags()
flags.DEFINE_string("train_file", None, "Training pairs: TSV (source TAB target).")
flags.DEFINE_string("valid_file", None, "Validation pairs: TSV (default: hold some out).")
flags.DEFINE_string("train_source", None, "Training sources, one per line (with --train_target).")
flags.DEFINE_string("train_target", None, "Training targets, aligned with --train_source.")
flags.DEFINE_enum("cell", None, list(config_lib.CELL_TYPES), "Recurrent cell.")
flags.DEFINE_integer("units", None, "Units per encoder layer (and direction).")
flags.DEFINE_integer("layers", None, "Stacked layers in encoder and decoder.")
flags.DEFINE_bool("bidirectional", None, "Bidirectional encoder.")
flags.DEFINE_float("dropout", None, "Input dropout of the recurrent layers.")
flags.DEFINE_float("recurrent_dropout", None, "Recurrent dropout.")
flags.DEFINE_enum("source_input", None, ["onehot", "embedding"], "Source token input.")
flags.DEFINE_enum("target_input", None, list(config_lib.TARGET_INPUTS), "Decoder token input.")
flags.DEFINE_integer("embedding_dim", None, "Embedding size for embedding inputs.")
flags.DEFINE_enum(
    "attention",
    None,
    list(config_lib.ATTENTION_TYPES),
    "Decoder attention over the encoder outputs: none, additive (Bahdanau) or "
    "multiplicative (Luong).",
)
flags.DEFINE_enum("tokenizer", None, list(config_lib.TOKENIZER_NAMES), "Tokenizer of both sides.")
flags.DEFINE_enum("source_tokenizer", None, list(config_lib.TOKENIZER_NAMES), "Source tokenizer.")
flags.DEFINE_enum("target_tokenizer", None, list(config_lib.TOKENIZER_NAMES), "Target tokenizer.")
flags.DEFINE_integer("max_source_length", None, "Longest source kept, in tokens.")
flags.DEFINE_integer("max_target_length", None, "Longest target kept, in tokens.")
flags.DEFINE_integer("min_count", None, "Tokens seen fewer times in training become UNK.")
flags.DEFINE_integer("max_vocab_size", None, "Cap on each vocabulary (reserved tokens included).")
flags.DEFINE_integer(
    "subword_vocab_size",
    None,
    "Size each subword vocabulary is learned to (reserved tokens included; default 8000).",
)
flags.DEFINE_integer("epochs", None, "Training epochs.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate (the peak with a schedule).")
flags.DEFINE_enum(
    "lr_schedule",
    None,
    list(config_lib.LR_SCHEDULES),
    "constant, or cosine: decay from --learning_rate to 1% of it over --epochs.",
)
flags.DEFINE_float("label_smoothing", None, "Label smoothing of the loss, in [0, 1).")
flags.DEFINE_integer("patience", None, "Early stopping patience in epochs (0: off).")
flags.DEFINE_float("valid_fraction", None, "Share held out for validation without --valid_file.")
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA.")
flags.DEFINE_enum(
    "mixed_precision",
    None,
    list(config_lib.PRECISION_POLICIES),
    "Mixed precision: float16 or bfloat16 compute with float32 variables (default: none).",
)
flags.DEFINE_enum(
    "distribution",
    None,
    list(config_lib.DISTRIBUTIONS),
    "tf.distribute strategy: none (one device), mirrored (every GPU of the machine) or "
    "multi_worker (several machines, from the TF_CONFIG environment variable; run the same "
    "command on each). --batch_size is the global batch.",
)
flags.DEFINE_string(
    "source_embeddings", None, "GloVe-format word vectors for the source embedding."
)
flags.DEFINE_string(
    "target_embeddings", None, "GloVe-format word vectors for the target embedding."
)
flags.DEFINE_bool("freeze_embeddings", None, "Keep pretrained embeddings fixed in training.")
flags.DEFINE_integer("num_samples", 10, "Held-out sample translations printed after training.")

# Flag name -> (config section, key), for flags that map one to one.
FLAG_TO_CONFIG = {
    "cell": ("model", "cell"),
    "units": ("model", "units"),
    "layers": ("model", "layers"),
    "bidirectional": ("model", "bidirectional"),
    "dropout": ("model", "dropout"),
    "recurrent_dropout": ("model", "recurrent_dropout"),
    "source_input": ("model", "source_input"),
    "target_input": ("model", "target_input"),
    "embedding_dim": ("model", "embedding_dim"),
    "attention": ("model", "attention"),
    "source_tokenizer": ("data", "source_tokenizer"),
    "target_tokenizer": ("data", "target_tokenizer"),
    "max_source_length": ("data", "max_source_length"),
    "max_target_length": ("data", "max_target_length"),
    "min_count": ("data", "min_count"),
    "max_vocab_size": ("data", "max_vocab_size"),
    "subword_vocab_size": ("data", "subword_vocab_size"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "lr_schedule": ("train", "lr_schedule"),
    "label_smoothing": ("train", "label_smoothing"),
    "seed": ("train", "seed"),
    "patience": ("train", "early_stopping_patience"),
    "valid_fraction": ("train", "valid_fraction"),
    "jit_compile": ("train", "jit_compile"),
    "mixed_precision": ("train", "mixed_precision"),
    "distribution": ("train", "distribution"),
    "source_embeddings": ("train", "source_embeddings"),
    "target_embeddings": ("train", "target_embeddings"),
    "freeze_embeddings": ("train", "freeze_embeddings"),
}


def config_from_flags(task: tasks.Task | None) -> config_lib.Config:
    """Builds the Config: defaults, then the task's tokenizers, then explicit flags."""
    values: dict[str, dict] = {"model": {}, "data": {}, "train": {}}
    if task is not None:
        values["data"]["source_tokenizer"] = task.source_tokenizer
        values["data"]["target_tokenizer"] = task.target_tokenizer
    if FLAGS.tokenizer is not None:
        values["data"]["source_tokenizer"] = FLAGS.tokenizer
        values["data"]["target_tokenizer"] = FLAGS.tokenizer
    for flag, (section, key) in FLAG_TO_CONFIG.items():
        if FLAGS[flag].value is not None:
            values[section][key] = FLAGS[flag].value
    return config_lib.Config.from_dict(values, source="flags")


class Data(NamedTuple):
    """The data named by the flags."""

    task: tasks.Task | None
    train: list[tuple[str, str]]
    valid: list[tuple[str, str]] | None
    test: list[tuple[str, str]] | None
    # (what, pairs, report) of each file or TFDS split read, for the length report.
    files: list[tuple[str, list[tuple[str, str]], ReadReport | ExampleReport]]


def load_data() -> Data:
    """Reads the data files or TFDS dataset named by the flags (or the built-in task)."""
    files = []

    def read(what, path):
        pairs, report = read_tsv(path, on_bad_line=FLAGS.on_bad_line)
        log_data_report(report)
        files.append((what, pairs, report))
        return pairs

    tfds_kwargs = tfds_options()
    if FLAGS.tfds:
        others = [
            f"--{name}"
            for name in ("train_file", "train_source", "train_target", "task")
            if FLAGS[name].value
        ]
        if others:
            raise ValueError(
                f"Give either --tfds or {', '.join(others)}, not both: --tfds names the "
                "training data."
            )
    if FLAGS.train_file and (FLAGS.train_source or FLAGS.train_target):
        raise ValueError("Give either --train_file or --train_source/--train_target, not both.")
    if bool(FLAGS.train_source) != bool(FLAGS.train_target):
        raise ValueError("--train_source and --train_target go together.")
    if FLAGS.task and (FLAGS.train_file or FLAGS.train_source):
        raise ValueError("Give either --task or your own training data, not both.")
    valid = read("validation", FLAGS.valid_file) if FLAGS.valid_file else None
    test = read("test", FLAGS.test_file) if FLAGS.test_file else None
    if FLAGS.tfds:
        return load_tfds_data(tfds_kwargs, valid, test, files)
    if FLAGS.train_file:
        return Data(None, read("training", FLAGS.train_file), valid, test, files)
    if FLAGS.train_source:
        pairs, report = read_aligned(
            FLAGS.train_source, FLAGS.train_target, on_bad_line=FLAGS.on_bad_line
        )
        log_data_report(report)
        files.append(("training", pairs, report))
        return Data(None, pairs, valid, test, files)
    task = tasks.get_task(FLAGS.task or tasks.DEFAULT_TASK)
    return Data(task, task.train, valid or task.valid, test or task.test, files)


def load_tfds_data(
    tfds_kwargs: dict,
    valid: list[tuple[str, str]] | None,
    test: list[tuple[str, str]] | None,
    files: list,
) -> Data:
    """Reads the --tfds dataset: its train split, and the validation and test splits
    that --valid_file and --test_file do not replace (appending each to ``files``)."""
    from seq2seq.datasets import load_tfds_splits

    splits = load_tfds_splits(
        FLAGS.tfds, with_validation=valid is None, with_test=test is None, **tfds_kwargs
    )
    split_data = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    for report in splits.reports:
        log_data_report(report)
        what = "training" if report.split == "train" else report.split
        files.append((what, split_data[report.split], report))
    return Data(None, splits.train, valid or splits.validation, test or splits.test, files)


def report_long_pairs(
    what: str,
    pairs: list[tuple[str, str]],
    report: ReadReport | ExampleReport,
    data: config_lib.DataConfig,
) -> int:
    """Logs (as a warning) the pairs of a file that training will drop as too long.

    Training counts them too, but only the reader knows their line numbers (or,
    for a TFDS split, example indices).

    Returns:
        The number of such pairs.
    """
    source_tokenizer = get_tokenizer(data.source_tokenizer)
    target_tokenizer = get_tokenizer(data.target_tokenizer)
    if source_tokenizer.needs_vocabulary or target_tokenizer.needs_vocabulary:
        return 0  # subword lengths are known once the vocabulary is learned; training counts them
    if isinstance(report, ExampleReport):
        location, unit, positions = report.location, "examples", report.pair_indices
    else:
        location, unit, positions = report.path, "lines", report.pair_lines
    lines = [
        line
        for (source, target), line in zip(pairs, positions, strict=True)
        if len(source_tokenizer.tokenize(source)) > data.max_source_length
        or len(target_tokenizer.tokenize(target)) > data.max_target_length
    ]
    if lines:
        shown = ", ".join(str(n) for n in lines[:MAX_REPORTED_LINES])
        more = (
            f" and {len(lines) - MAX_REPORTED_LINES} more"
            if len(lines) > MAX_REPORTED_LINES
            else ""
        )
        logging.warning(
            "%s: %d %s pairs are longer than max_source_length=%d or max_target_length=%d "
            "tokens and are left out (%s %s%s).",
            location,
            len(lines),
            what,
            data.max_source_length,
            data.max_target_length,
            unit,
            shown,
            more,
        )
    return len(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    setup_logging()
    from seq2seq.data import split_validation
    from seq2seq.evaluation import evaluate
    from seq2seq.training import train
    from seq2seq.translator import Translator

    try:
        chief = True
        if FLAGS.distribution == "multi_worker":
            from seq2seq.distribute import make_strategy, read_tf_config

            # Before reading data: collectives must be set up before any TensorFlow op.
            make_strategy("multi_worker")
            chief = read_tf_config().is_chief
        data = load_data()
        task, train_pairs, valid_pairs, held_out = data.task, data.train, data.valid, data.test
        config = config_from_flags(task)
        for what, pairs, report in data.files:
            if what != "test":
                report_long_pairs(what, pairs, report, config.data)
        model_dir = FLAGS.model_dir
        if model_dir is None:
            if task is None:
                raise ValueError("--model_dir is required with --train_file/--train_source/--tfds.")
            model_dir = f"runs/{task.name}"
        if task is not None:
            logging.info("Built-in task %r: %s", task.name, task.description)
        if valid_pairs is None:
            train_pairs, valid_pairs = split_validation(
                train_pairs, config.train.valid_fraction, config.train.seed
            )
            logging.info("Held out %d of the training pairs for validation.", len(valid_pairs))
        result = train(config, train_pairs, valid_pairs, model_dir)
        if not chief:
            logging.info("Worker done after %d epochs; the chief evaluates.", result.epochs_done)
            return
        held_out = held_out or valid_pairs
        translator = Translator.load(model_dir)
        scores = evaluate(translator, held_out)
        shown = held_out[: FLAGS.num_samples]
        translations = translator.translate([s for s, _ in shown])
    except user_errors() as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; run the same command to resume from the last finished epoch.", 130)

    print(f"\nSample translations of held-out sentences ({model_dir}):")
    for (source, reference), hypothesis in zip(shown, translations, strict=True):
        mark = "ok " if hypothesis == translator.normalize_target(reference) else "ERR"
        print(f"  {mark} {source!r} -> {hypothesis!r} (reference {reference!r})")
    print(
        f"\nExact match on {scores['num_examples']} held-out pairs: "
        f"{100 * scores['exact_match']:.2f}% after {result.epochs_done} epochs"
    )
    print(json.dumps({"model_dir": model_dir, "epochs": result.epochs_done, **scores}))


def run() -> None:
    """Console entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
