"""seq2seq against the canonical Keras recipe, side by side, on a Tatoeba/Anki TSV file.

    python benchmarks/run.py --data ../shared/data/fra-eng/fra.txt

Measures, in one run (see docs/performance.md):

1. training throughput in real (non-padding) target tokens/s and time per
   epoch: the two trainings alternate epoch by epoch (reference, seq2seq,
   reference, ...); medians leave out the first (compiling) epoch;
2. validation loss over real target tokens (padding excluded for both) and
   exact match of greedy decoding, after the same number of epochs;
3. greedy decoding in sentences/s: the recipe's per-step ``predict()`` loop
   against seq2seq's compiled batched loop, both on the recipe's trained
   weights (copied into a seq2seq model), alternating, medians;
4. achieved GFLOP/s of training and decoding against the matmul peak
   measured in the same run;
5. peak RSS of a one-epoch training run at several corpus sizes, each in a
   fresh process (the reference only where its arrays fit the memory limit).

Prints one table and one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("data", None, "Tatoeba/Anki TSV (source TAB target ...).", required=True)
flags.DEFINE_integer("num_pairs", 10_000, "Pairs taken from the top of the file.")
flags.DEFINE_integer("num_valid", 1_000, "Of those, held out (seeded) for validation and decoding.")
flags.DEFINE_integer("epochs", 10, "Training epochs of each side.")
flags.DEFINE_integer("batch_size", 64, "Training batch size of both sides.")
flags.DEFINE_integer("units", 256, "LSTM units of both sides.")
flags.DEFINE_integer("seed", 0, "Seed of the split and of both trainings.")
flags.DEFINE_integer("reference_decode", 20, "Sentences the reference decodes per repetition.")
flags.DEFINE_integer("decode_repeats", 3, "Alternating decoding repetitions.")
flags.DEFINE_integer("decode_batch_size", None, "seq2seq decoding batch (default: its config).")
flags.DEFINE_list("memory_sizes", ["10000", "60000", "167130"], "Corpus sizes for peak RSS.")
flags.DEFINE_float("reference_max_gib", 16.0, "Skip the reference where its arrays need more.")
flags.DEFINE_list("benchmarks", ["speed", "memory"], "Which parts to run: speed, memory.")
flags.DEFINE_string("json_out", None, "Also write the JSON result to this file.")
flags.DEFINE_enum("rss_child", None, ["reference", "seq2seq"], "Internal: one memory run.")
FLAGS = flags.FLAGS

GIB = 1024**3


def load_pairs(path: str, num_pairs: int | None) -> list[tuple[str, str]]:
    from seq2seq.readers import read_tsv

    pairs, report = read_tsv(path, on_bad_line="skip", max_pairs=num_pairs)
    if report.num_skipped:
        print(report.summary(), file=sys.stderr)
    return pairs


def split(pairs, num_valid: int, seed: int):
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:num_valid])
    train = [p for i, p in enumerate(pairs) if i not in held]
    valid = [p for i, p in enumerate(pairs) if i in held]
    return train, valid


def seq2seq_setup(train_pairs, valid_pairs, units: int, batch_size: int, seed: int):
    """Config, vocabularies, datasets and compiled model of the seq2seq side."""
    import keras

    from seq2seq.config import Config, DataConfig, ModelConfig, TrainConfig
    from seq2seq.data import encode_pairs, make_dataset
    from seq2seq.model import build_model
    from seq2seq.training import compile_model
    from seq2seq.vocab import Vocabulary

    config = Config(
        model=ModelConfig(cell="lstm", units=units),
        data=DataConfig(max_source_length=10_000, max_target_length=10_000),
        train=TrainConfig(batch_size=batch_size, seed=seed),
    )
    src_vocab = Vocabulary.build((s for s, _ in train_pairs), "char")
    tgt_vocab = Vocabulary.build((t for _, t in train_pairs), "char")
    limits = (config.data.max_source_length, config.data.max_target_length)
    train_enc, _ = encode_pairs(train_pairs, src_vocab, tgt_vocab, *limits)
    train_ds = make_dataset(train_enc, batch_size, shuffle=True, seed=seed)
    valid_ds = None
    if valid_pairs:
        valid_enc, _ = encode_pairs(valid_pairs, src_vocab, tgt_vocab, *limits)
        valid_ds = make_dataset(valid_enc, batch_size)
    keras.utils.set_random_seed(seed)
    model = build_model(config.model, src_vocab.size, tgt_vocab.size)
    compile_model(model, config)
    return config, src_vocab, tgt_vocab, train_ds, valid_ds, model


def padded_steps(dataset) -> tuple[int, int]:
    """Sums batch * padded length over a dataset's batches, for source and target."""
    source = target = 0
    for inputs, y in dataset:
        source += int(inputs["source"].shape[0] * inputs["source"].shape[1])
        target += int(y.shape[0] * y.shape[1])
    return source, target


def exact_match(hypotheses, pairs) -> float:
    return sum(h == t for h, (_, t) in zip(hypotheses, pairs, strict=True)) / len(pairs)


def speed(train_pairs, valid_pairs) -> dict:
    """Training, quality and decoding, reference and seq2seq side by side."""
    import keras
    import reference
    from flops import TRAIN_FLOPS_PER_FORWARD, forward_flops, matmul_peak_gflops

    from seq2seq.model import build_model
    from seq2seq.translator import Translator

    units, batch = FLAGS.units, FLAGS.batch_size
    ref_train = reference.prepare(train_pairs)
    ref_valid = reference.prepare(valid_pairs, tables=ref_train)
    keras.utils.set_random_seed(FLAGS.seed)
    ref_model = reference.build_model(
        len(ref_train.source_chars), len(ref_train.target_chars), units
    )
    config, src_vocab, tgt_vocab, train_ds, valid_ds, model = seq2seq_setup(
        train_pairs, valid_pairs, units, batch, FLAGS.seed
    )
    real_tokens = sum(len(t) + 1 for _, t in train_pairs)  # + END / EOS
    n = len(train_pairs)
    ref_flops = TRAIN_FLOPS_PER_FORWARD * forward_flops(
        n * ref_train.max_source_length,
        n * ref_train.max_target_length,
        len(ref_train.source_chars),
        len(ref_train.target_chars),
        units,
    )
    our_flops = TRAIN_FLOPS_PER_FORWARD * forward_flops(
        *padded_steps(train_ds), src_vocab.size, tgt_vocab.size, units
    )

    ref_times, our_times = [], []
    for epoch in range(FLAGS.epochs):
        start = time.perf_counter()
        ref_model.fit(
            [ref_train.encoder_input, ref_train.decoder_input],
            ref_train.decoder_target,
            batch_size=batch,
            epochs=1,
            shuffle=True,
            verbose=0,
        )
        ref_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.fit(train_ds, epochs=1, shuffle=False, verbose=0)
        our_times.append(time.perf_counter() - start)
        print(
            f"epoch {epoch + 1}: reference {ref_times[-1]:.1f}s, seq2seq {our_times[-1]:.1f}s",
            file=sys.stderr,
        )
    steady = slice(1, None) if FLAGS.epochs > 1 else slice(None)
    ref_epoch = statistics.median(ref_times[steady])
    our_epoch = statistics.median(our_times[steady])

    # Quality after the same number of epochs.
    ref_val_loss = reference.masked_validation_loss(ref_model, ref_valid)
    our_val_loss = float(model.evaluate(valid_ds, verbose=0, return_dict=True)["loss"])
    config.decode.max_length = ref_train.max_target_length
    if FLAGS.decode_batch_size:
        config.decode.batch_size = FLAGS.decode_batch_size
    ours = Translator(model, src_vocab, tgt_vocab, config)
    sources = [s for s, _ in valid_pairs]
    our_em = exact_match(ours.translate(sources), valid_pairs)

    # The recipe's weights in a seq2seq model: same function, seq2seq's decoder.
    ref_as_ours = build_model(config.model, src_vocab.size, tgt_vocab.size)
    reference.transfer_weights(ref_model, ref_train, ref_as_ours, src_vocab, tgt_vocab)
    fast = Translator(ref_as_ours, src_vocab, tgt_vocab, config)
    slow = reference.ReferenceInference(ref_model, ref_train)
    fast_out = fast.translate(sources)
    ref_em = exact_match(fast_out, valid_pairs)

    subset = sources[: FLAGS.reference_decode]
    slow.decode(subset[0])  # build predict functions outside the timings
    ref_rates, our_rates = [], []
    for _ in range(FLAGS.decode_repeats):
        start = time.perf_counter()
        slow_out = [slow.decode(s) for s in subset]
        ref_rates.append(len(subset) / (time.perf_counter() - start))
        start = time.perf_counter()
        fast_out = fast.translate(sources)
        our_rates.append(len(sources) / (time.perf_counter() - start))
    agreement = sum(a == b for a, b in zip(slow_out, fast_out, strict=False)) / len(subset)
    ref_rate, our_rate = statistics.median(ref_rates), statistics.median(our_rates)
    decode_flops = decoding_flops(fast, sources, fast_out, units)
    ref_decode_flops = sum(
        forward_flops(
            max(1, len(s)),
            len(o) + 1,
            len(ref_train.source_chars),
            len(ref_train.target_chars),
            units,
        )
        for s, o in zip(subset, slow_out, strict=True)
    )
    peak = matmul_peak_gflops()

    return {
        "pairs_train": n,
        "pairs_valid": len(valid_pairs),
        "epochs": FLAGS.epochs,
        "batch_size": batch,
        "units": units,
        "real_target_tokens_per_epoch": real_tokens,
        "reference_epoch_s": ref_times,
        "seq2seq_epoch_s": our_times,
        "reference_epoch_median_s": ref_epoch,
        "seq2seq_epoch_median_s": our_epoch,
        "reference_tokens_per_s": real_tokens / ref_epoch,
        "seq2seq_tokens_per_s": real_tokens / our_epoch,
        "train_speedup": ref_epoch / our_epoch,
        "reference_train_gflops": ref_flops / ref_epoch / 1e9,
        "seq2seq_train_gflops": our_flops / our_epoch / 1e9,
        "reference_val_loss": ref_val_loss,
        "seq2seq_val_loss": our_val_loss,
        "reference_exact_match": ref_em,
        "seq2seq_exact_match": our_em,
        "reference_sentences_per_s": ref_rates,
        "seq2seq_sentences_per_s": our_rates,
        "reference_decode_median": ref_rate,
        "seq2seq_decode_median": our_rate,
        "decode_speedup": our_rate / ref_rate,
        "decode_agreement": agreement,
        "reference_decode_gflops": ref_decode_flops / (len(subset) / ref_rate) / 1e9,
        "seq2seq_decode_gflops": decode_flops / (len(sources) / our_rate) / 1e9,
        "matmul_peak_gflops": peak,
    }


def decoding_flops(translator, sources, outputs, units: int) -> int:
    """Executed FLOPs of ``Translator.translate``: its batches, padded lengths and steps run."""
    from flops import forward_flops

    from seq2seq.translator import SOURCE_LENGTH_MULTIPLE

    encoded = translator.encode_sources(sources)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    batch = translator.config.decode.batch_size
    cap = translator.config.decode.max_length
    total = 0
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        width = max(len(encoded[i]) for i in chunk)
        width = max(1, -(-width // SOURCE_LENGTH_MULTIPLE) * SOURCE_LENGTH_MULTIPLE)
        steps = min(cap, max(len(outputs[i]) for i in chunk) + 1)
        total += forward_flops(
            len(chunk) * width,
            len(chunk) * steps,
            translator.source_vocab.size,
            translator.target_vocab.size,
            units,
        )
    return total


def rss_child() -> None:
    """One memory run in this process: prepare data, build, train one epoch, print peak RSS."""
    pairs = load_pairs(FLAGS.data, FLAGS.num_pairs)
    start = time.perf_counter()
    if FLAGS.rss_child == "reference":
        import keras
        import reference

        data = reference.prepare(pairs)
        model = reference.build_model(len(data.source_chars), len(data.target_chars), FLAGS.units)
        keras.utils.set_random_seed(FLAGS.seed)
        model.fit(
            [data.encoder_input, data.decoder_input],
            data.decoder_target,
            batch_size=FLAGS.batch_size,
            epochs=1,
            verbose=0,
        )
    else:
        *_, train_ds, _, model = seq2seq_setup(pairs, [], FLAGS.units, FLAGS.batch_size, FLAGS.seed)
        model.fit(train_ds, epochs=1, shuffle=False, verbose=0)
    print(
        json.dumps(
            {"peak_rss_gib": peak_rss_kib() / 1024**2, "seconds": time.perf_counter() - start}
        )
    )


def peak_rss_kib() -> int:
    """Peak RSS of this process image, from /proc (``ru_maxrss`` would carry the parent's over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory() -> dict:
    """Peak RSS of one-epoch runs in fresh processes, per corpus size and side."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference

    results = {}
    for size in [int(s) for s in FLAGS.memory_sizes]:
        pairs = load_pairs(FLAGS.data, size)
        need = reference.array_bytes(pairs) / GIB
        for side in ("reference", "seq2seq"):
            key = f"{side}_{len(pairs)}"
            if side == "reference" and need > FLAGS.reference_max_gib:
                results[key] = {"skipped": f"its arrays alone need {need:.1f} GiB"}
                continue
            command = [
                sys.executable,
                os.path.abspath(__file__),
                f"--data={FLAGS.data}",
                f"--num_pairs={size}",
                f"--rss_child={side}",
                f"--units={FLAGS.units}",
                f"--batch_size={FLAGS.batch_size}",
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                results[key] = {"failed": done.stderr.strip().splitlines()[-1:]}
            else:
                results[key] = json.loads(done.stdout.strip().splitlines()[-1])
            results[key]["reference_array_gib"] = need
            print(f"memory {key}: {results[key]}", file=sys.stderr)
    return results


def print_table(result: dict) -> None:
    s = result.get("speed")
    if s:
        rows = [
            (
                "training: real target tokens/s",
                s["reference_tokens_per_s"],
                s["seq2seq_tokens_per_s"],
            ),
            ("training: s per epoch", s["reference_epoch_median_s"], s["seq2seq_epoch_median_s"]),
            ("training: GFLOP/s executed", s["reference_train_gflops"], s["seq2seq_train_gflops"]),
            (
                f"validation loss after {s['epochs']} epochs",
                s["reference_val_loss"],
                s["seq2seq_val_loss"],
            ),
            (
                "validation exact match (greedy)",
                s["reference_exact_match"],
                s["seq2seq_exact_match"],
            ),
            (
                "greedy decoding: sentences/s",
                s["reference_decode_median"],
                s["seq2seq_decode_median"],
            ),
            (
                "greedy decoding: GFLOP/s executed",
                s["reference_decode_gflops"],
                s["seq2seq_decode_gflops"],
            ),
        ]
        print(f"{'measure':<42}{'reference':>14}{'seq2seq':>14}{'ratio':>10}")
        for name, ref, ours in rows:
            ratio = ours / ref if ref else float("nan")
            print(f"{name:<42}{ref:>14.4g}{ours:>14.4g}{ratio:>10.3g}")
        peak = s["matmul_peak_gflops"]
        print(
            f"matmul peak {peak:.1f} GFLOP/s: training at {100 * s['seq2seq_train_gflops'] / peak:.1f}%, "
            f"decoding at {100 * s['seq2seq_decode_gflops'] / peak:.1f}% of it; "
            f"decoders agree on {100 * s['decode_agreement']:.0f}% of the shared sentences"
        )
    for key, value in result.get("memory", {}).items():
        shown = value.get("peak_rss_gib")
        text = (
            f"{shown:.2f} GiB peak RSS" if shown else (value.get("skipped") or value.get("failed"))
        )
        print(f"memory {key:<24}{text}")


def main(argv):
    if FLAGS.rss_child:
        rss_child()
        return
    result = {"benchmark": "seq2seq_vs_keras_recipe", "data": FLAGS.data}
    if "speed" in FLAGS.benchmarks:
        pairs = load_pairs(FLAGS.data, FLAGS.num_pairs)
        train_pairs, valid_pairs = split(pairs, FLAGS.num_valid, FLAGS.seed)
        result["speed"] = speed(train_pairs, valid_pairs)
    if "memory" in FLAGS.benchmarks:
        result["memory"] = memory()
    print_table(result)
    line = json.dumps(result)
    print(line)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    app.run(main)
