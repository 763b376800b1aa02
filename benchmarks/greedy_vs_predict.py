"""Greedy decoding throughput: seq2seq's compiled batched loop vs the per-step predict() loop.

The reference is the inference loop of the canonical Keras character-level
recipe: for one sentence at a time, ``encoder_model.predict`` once, then
``decoder_model.predict`` once per output character, feeding back the argmax
and the states. It runs here over the inference graph of the same trained
model (same weights, same outputs), so only the decoding loop differs.

Runs alternate (reference, seq2seq, reference, ...) and the table reports
medians and their ratio, then one JSON line.

    python benchmarks/greedy_vs_predict.py --model_dir=runs/dates --task=dates
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("model_dir", None, "Trained model directory.", required=True)
flags.DEFINE_string("task", "dates", "Built-in task whose test sources are decoded.")
flags.DEFINE_string("test_file", None, "TSV of sources to decode instead of --task.")
flags.DEFINE_integer("num_sentences", 1000, "Sentences decoded by seq2seq per repetition.")
flags.DEFINE_integer("num_reference", 20, "Sentences decoded by the reference per repetition.")
flags.DEFINE_integer("repeats", 3, "Alternating repetitions.")
FLAGS = flags.FLAGS


def reference_decode(translator, sentences: list[str]) -> list[str]:
    """The per-sentence, per-step ``predict()`` loop of the Keras recipe."""
    from seq2seq.vocab import BOS_ID, EOS_ID

    graph = translator.inference_graph
    outputs = []
    for ids in translator.encode_sources(sentences):
        states = graph.encoder_model.predict(np.array([ids or [0]], "int32"), verbose=0)
        token, decoded = BOS_ID, []
        for _ in range(translator.config.decode.max_length):
            result = graph.step_model.predict([np.array([token], "int32"), *states], verbose=0)
            probabilities, states = result[0], list(result[1:])
            token = int(np.argmax(probabilities[0]))
            if token == EOS_ID:
                break
            decoded.append(token)
        outputs.append(translator.target_vocab.decode(decoded))
    return outputs


def main(argv):
    from seq2seq import tasks
    from seq2seq.readers import read_tsv
    from seq2seq.translator import Translator

    if FLAGS.test_file:
        pairs, _ = read_tsv(FLAGS.test_file)
    else:
        pairs = tasks.get_task(FLAGS.task).test
    sources = [s for s, _ in pairs][: FLAGS.num_sentences]
    translator = Translator.load(FLAGS.model_dir)
    translator.translate(sources[:8])  # compile once, outside the timings
    reference_decode(translator, sources[:1])

    ours, ref = [], []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        ref_out = reference_decode(translator, sources[: FLAGS.num_reference])
        ref.append(FLAGS.num_reference / (time.perf_counter() - start))
        start = time.perf_counter()
        our_out = translator.translate(sources)
        ours.append(len(sources) / (time.perf_counter() - start))
    agree = sum(a == b for a, b in zip(ref_out, our_out, strict=False)) / len(ref_out)
    ref_median, our_median = statistics.median(ref), statistics.median(ours)
    print(f"{'decoder':<34}{'sentences/s (median)':>22}{'runs':>8}")
    print(f"{'reference: per-step predict()':<34}{ref_median:>22.2f}{len(ref):>8}")
    print(f"{'seq2seq: compiled batched greedy':<34}{our_median:>22.1f}{len(ours):>8}")
    print(
        f"speed-up: {our_median / ref_median:.0f}x; identical outputs on the shared sentences: "
        f"{100 * agree:.0f}%"
    )
    print(
        json.dumps(
            {
                "benchmark": "greedy_vs_predict",
                "model_dir": FLAGS.model_dir,
                "num_sentences": len(sources),
                "num_reference": FLAGS.num_reference,
                "reference_sentences_per_s": ref,
                "seq2seq_sentences_per_s": ours,
                "reference_median": ref_median,
                "seq2seq_median": our_median,
                "speedup": our_median / ref_median,
                "agreement": agree,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
