"""Beam search vs greedy decoding speed and quality, and the SavedModel round trip.

For each batch size, greedy and beam search decode the same sentences with
the same trained model, alternating (greedy, beam, greedy, ...); the table
gives median sentences/s and the beam/greedy ratio, then exact match and chrF
of both against the references. With ``--export_check`` both strategies are
exported (``seq2seq.export``), loaded in a fresh process that does not import
seq2seq, and their translations of the same sentences compared with the
Translator's. Ends with one JSON line.

    seq2seq-train --train_file=fra10k.tsv --model_dir=runs/fra --epochs=12
    python benchmarks/decoding_strategies.py --model_dir=runs/fra --test_file=fra_test.tsv
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model_dir", None, "Trained model directory.", required=True)
flags.DEFINE_string("test_file", None, "TSV of held-out pairs (source TAB target).", required=True)
flags.DEFINE_integer("num_sentences", 1000, "Sentences decoded per repetition.")
flags.DEFINE_list("batch_sizes", ["64", "256"], "Decoding batch sizes.")
flags.DEFINE_integer("beam_size", 5, "Beam size.")
flags.DEFINE_float("length_penalty", 0.0, "Beam search length penalty.")
flags.DEFINE_integer("repeats", 5, "Alternating repetitions per batch size.")
flags.DEFINE_bool("export_check", True, "Also check the SavedModel round trip.")
FLAGS = flags.FLAGS

# Loads a SavedModel with TensorFlow alone and translates stdin lines (JSON list).
_SERVE = r"""
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
sentences = json.load(sys.stdin)
out = []
for start in range(0, len(sentences), int(sys.argv[2])):
    batch = tf.constant(sentences[start : start + int(sys.argv[2])], tf.string)
    out += [t.decode("utf-8") for t in serve(sentences=batch)["translations"].numpy()]
print(json.dumps({"translations": out, "seq2seq_imported": "seq2seq" in sys.modules}))
"""


def served_translations(export_dir: str, sentences: list[str], batch_size: int) -> dict:
    """Translations of ``sentences`` by the SavedModel, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", _SERVE, export_dir, str(batch_size)],
        input=json.dumps(sentences),
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def main(argv):
    import sacrebleu

    from seq2seq.decoding import BeamSearch, GreedySearch
    from seq2seq.export import export_saved_model
    from seq2seq.readers import read_tsv
    from seq2seq.translator import Translator

    pairs, _ = read_tsv(FLAGS.test_file)
    pairs = pairs[: FLAGS.num_sentences]
    sources = [s for s, _ in pairs]
    base = Translator.load(FLAGS.model_dir)
    references = [base.normalize_target(t) for _, t in pairs]
    translators = {
        "greedy": Translator(
            base.model, base.source_vocab, base.target_vocab, base.config, GreedySearch()
        ),
        f"beam{FLAGS.beam_size}": Translator(
            base.model,
            base.source_vocab,
            base.target_vocab,
            base.config,
            BeamSearch(FLAGS.beam_size, 1, FLAGS.length_penalty),
        ),
    }
    result = {
        "benchmark": "decoding_strategies",
        "model_dir": FLAGS.model_dir,
        "num_sentences": len(sources),
        "beam_size": FLAGS.beam_size,
        "length_penalty": FLAGS.length_penalty,
        "speed": {},
        "quality": {},
    }
    outputs = {}
    for batch_size in map(int, FLAGS.batch_sizes):
        rates = {name: [] for name in translators}
        for translator in translators.values():
            translator.translate(sources, batch_size=batch_size)  # compile every shape once
        for _ in range(FLAGS.repeats):
            for name, translator in translators.items():
                start = time.perf_counter()
                outputs[name] = translator.translate(sources, batch_size=batch_size)
                rates[name].append(len(sources) / (time.perf_counter() - start))
        medians = {name: statistics.median(r) for name, r in rates.items()}
        greedy, beam = medians["greedy"], medians[f"beam{FLAGS.beam_size}"]
        result["speed"][batch_size] = {"runs": rates, "medians": medians, "ratio": beam / greedy}
    for name, hypotheses in outputs.items():
        result["quality"][name] = {
            "exact_match": sum(h == r for h, r in zip(hypotheses, references, strict=True))
            / len(references),
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "mean_length": statistics.mean(len(h) for h in hypotheses),
        }
    if FLAGS.export_check:
        result["export"] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, translator in translators.items():
                export_dir = export_saved_model(translator, os.path.join(tmp, name))
                expected = translator.translate(sources)
                for batch_size in (len(sources), 64):
                    served = served_translations(export_dir, sources, batch_size)
                    same = sum(a == b for a, b in zip(served["translations"], expected, strict=True))
                    result["export"][f"{name}/batch{batch_size}"] = {
                        "identical": same / len(sources),
                        "seq2seq_imported": served["seq2seq_imported"],
                    }

    print(f"{len(sources)} sentences of {FLAGS.test_file}; model {FLAGS.model_dir}")
    print(f"{'batch':>6}{'greedy sent/s':>16}{'beam sent/s':>14}{'beam/greedy':>13}")
    for batch_size, row in result["speed"].items():
        greedy, beam = row["medians"].values()
        print(f"{batch_size:>6}{greedy:>16.1f}{beam:>14.1f}{row['ratio']:>12.0%}")
    print(f"{'decoder':<10}{'exact match':>13}{'chrF':>8}{'mean length':>13}")
    for name, q in result["quality"].items():
        print(f"{name:<10}{q['exact_match']:>13.1%}{q['chrf']:>8.1f}{q['mean_length']:>13.1f}")
    for key, check in result.get("export", {}).items():
        print(f"export {key}: {check['identical']:.1%} identical to the Translator")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
