"""seq2seq-train: train a model on a TSV file, two aligned files or a built-in task.

With no data flag it trains the built-in default task, then prints sample
translations of held-out sentences and their exact match.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from seq2seq import config as config_lib
from seq2seq import tasks
from seq2seq.cli.common import FLAGS, define_on_bad_line, fail, setup_logging, user_errors

define_on_bad_line()
flags.DEFINE_string("train_file", None, "Training pairs: TSV (source TAB target).")
flags.DEFINE_string("valid_file", None, "Validation pairs: TSV (default: hold some out).")
flags.DEFINE_string("test_file", None, "Held-out pairs to report on after training: TSV.")
flags.DEFINE_string("train_source", None, "Training sources, one per line (with --train_target).")
flags.DEFINE_string("train_target", None, "Training targets, aligned with --train_source.")
flags.DEFINE_enum("task", None, list(tasks.TASK_NAMES), "Built-in task (default when no data).")
flags.DEFINE_enum("cell", None, list(config_lib.CELL_TYPES), "Recurrent cell.")
flags.DEFINE_integer("units", None, "Units per encoder layer (and direction).")
flags.DEFINE_integer("layers", None, "Stacked layers in encoder and decoder.")
flags.DEFINE_bool("bidirectional", None, "Bidirectional encoder.")
flags.DEFINE_float("dropout", None, "Input dropout of the recurrent layers.")
flags.DEFINE_float("recurrent_dropout", None, "Recurrent dropout.")
flags.DEFINE_enum("source_input", None, ["onehot", "embedding"], "Source token input.")
flags.DEFINE_enum("target_input", None, list(config_lib.TARGET_INPUTS), "Decoder token input.")
flags.DEFINE_integer("embedding_dim", None, "Embedding size for embedding inputs.")
flags.DEFINE_enum("tokenizer", None, list(config_lib.TOKENIZER_NAMES), "Tokenizer of both sides.")
flags.DEFINE_enum("source_tokenizer", None, list(config_lib.TOKENIZER_NAMES), "Source tokenizer.")
flags.DEFINE_enum("target_tokenizer", None, list(config_lib.TOKENIZER_NAMES), "Target tokenizer.")
flags.DEFINE_integer("max_source_length", None, "Longest source kept, in tokens.")
flags.DEFINE_integer("max_target_length", None, "Longest target kept, in tokens.")
flags.DEFINE_integer("epochs", None, "Training epochs.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate.")
flags.DEFINE_integer("seed", None, "Random seed.")
flags.DEFINE_integer("patience", None, "Early stopping patience in epochs (0: off).")
flags.DEFINE_float("valid_fraction", None, "Share held out for validation without --valid_file.")
flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA.")
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
    "source_tokenizer": ("data", "source_tokenizer"),
    "target_tokenizer": ("data", "target_tokenizer"),
    "max_source_length": ("data", "max_source_length"),
    "max_target_length": ("data", "max_target_length"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "seed": ("train", "seed"),
    "patience": ("train", "early_stopping_patience"),
    "valid_fraction": ("train", "valid_fraction"),
    "jit_compile": ("train", "jit_compile"),
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


def load_data():
    """Returns (task or None, train, valid or None, held-out or None) from the flags."""
    from seq2seq.readers import read_aligned, read_tsv

    def read(path):
        pairs, report = read_tsv(path, on_bad_line=FLAGS.on_bad_line)
        logging.info("%s", report.summary())
        return pairs

    if FLAGS.train_file and (FLAGS.train_source or FLAGS.train_target):
        raise ValueError("Give either --train_file or --train_source/--train_target, not both.")
    if bool(FLAGS.train_source) != bool(FLAGS.train_target):
        raise ValueError("--train_source and --train_target go together.")
    if FLAGS.task and (FLAGS.train_file or FLAGS.train_source):
        raise ValueError("Give either --task or your own training data, not both.")
    valid = read(FLAGS.valid_file) if FLAGS.valid_file else None
    test = read(FLAGS.test_file) if FLAGS.test_file else None
    if FLAGS.train_file:
        return None, read(FLAGS.train_file), valid, test
    if FLAGS.train_source:
        pairs, report = read_aligned(
            FLAGS.train_source, FLAGS.train_target, on_bad_line=FLAGS.on_bad_line
        )
        logging.info("%s", report.summary())
        return None, pairs, valid, test
    task = tasks.get_task(FLAGS.task or tasks.DEFAULT_TASK)
    return task, task.train, valid or task.valid, test or task.test


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments: {argv[1:]}")
    setup_logging()
    from seq2seq.data import split_validation
    from seq2seq.evaluation import evaluate
    from seq2seq.training import train
    from seq2seq.translator import Translator

    try:
        task, train_pairs, valid_pairs, held_out = load_data()
        config = config_from_flags(task)
        model_dir = FLAGS.model_dir
        if model_dir is None:
            if task is None:
                raise ValueError("--model_dir is required with --train_file/--train_source.")
            model_dir = f"runs/{task.name}"
        if task is not None:
            logging.info("Built-in task %r: %s", task.name, task.description)
        if valid_pairs is None:
            train_pairs, valid_pairs = split_validation(
                train_pairs, config.train.valid_fraction, config.train.seed
            )
            logging.info("Held out %d of the training pairs for validation.", len(valid_pairs))
        result = train(config, train_pairs, valid_pairs, model_dir)
        held_out = held_out or valid_pairs
        translator = Translator.load(model_dir)
        scores = evaluate(translator, held_out)
        shown = held_out[: FLAGS.num_samples]
        translations = translator.translate([s for s, _ in shown])
    except user_errors() as error:
        fail(str(error))

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
