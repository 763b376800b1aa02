"""Subword vocabulary cost: learning a WordPiece vocabulary per side and encoding the corpus.

For each side of a TSV corpus: the time to learn a ``subword`` vocabulary of
``--vocab_size`` tokens (tensorflow-text's learner), to encode every sentence
in one ``encode_batch`` call, and, beside it, to build and encode a ``word``
vocabulary. Repetitions alternate (subword, word, subword, ...); the table
reports medians, then one JSON line. Also reported: the pieces per sentence,
the words per sentence, and the sentences whose ``decode(encode(x))`` is not
``x`` with single spaces (0 expected: every character is in the vocabulary).

    python benchmarks/subword_vocab.py --data=../shared/data/multi30k/train.tok.de-en.tsv
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("data", None, "TSV of sentence pairs (source TAB target).", required=True)
flags.DEFINE_integer("vocab_size", 8000, "Subword vocabulary size per side.")
flags.DEFINE_integer("repeats", 3, "Alternating repetitions.")
FLAGS = flags.FLAGS


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main(argv):
    del argv
    from seq2seq.readers import read_tsv
    from seq2seq.vocab import Vocabulary

    pairs, _ = read_tsv(FLAGS.data)
    rows, summary = [], {"data": FLAGS.data, "pairs": len(pairs), "vocab_size": FLAGS.vocab_size}
    for side, name in enumerate(("source", "target")):
        texts = [pair[side] for pair in pairs]
        times = {"subword_learn": [], "subword_encode": [], "word_build": [], "word_encode": []}
        for _ in range(FLAGS.repeats):
            vocab, seconds = _timed(
                lambda texts=texts: Vocabulary.build(texts, "subword", max_size=FLAGS.vocab_size)
            )
            times["subword_learn"].append(seconds)
            ids, seconds = _timed(lambda vocab=vocab, texts=texts: vocab.encode_batch(texts))
            times["subword_encode"].append(seconds)
            words, seconds = _timed(lambda texts=texts: Vocabulary.build(texts, "word"))
            times["word_build"].append(seconds)
            _, seconds = _timed(lambda words=words, texts=texts: words.encode_batch(texts))
            times["word_encode"].append(seconds)
        lossy = sum(vocab.decode(i) != " ".join(t.split()) for i, t in zip(ids, texts, strict=True))
        medians = {key: statistics.median(values) for key, values in times.items()}
        side_summary = {
            **{f"{key}_s": round(value, 3) for key, value in medians.items()},
            "size": vocab.size,
            "pieces_per_sentence": round(sum(map(len, ids)) / len(ids), 2),
            "words_per_sentence": round(sum(len(t.split()) for t in texts) / len(texts), 2),
            "not_round_tripped": lossy,
        }
        summary[name] = side_summary
        rows.append((name, side_summary))

    print(f"{len(pairs)} pairs from {FLAGS.data}; medians of {FLAGS.repeats} alternating runs")
    header = ("side", "learn s", "encode s", "word build s", "word encode s", "size", "pieces/sent")
    print(" | ".join(header))
    for name, s in rows:
        print(
            f"{name} | {s['subword_learn_s']} | {s['subword_encode_s']} | {s['word_build_s']} | "
            f"{s['word_encode_s']} | {s['size']} | {s['pieces_per_sentence']} "
            f"(words {s['words_per_sentence']})"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
