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

import copy
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
flags.DEFINE_list(
    "seq2seq_train", ["64", "128"], "seq2seq training variants: BATCH or BATCH:jit (XLA)."
)
flags.DEFINE_list(
    "seq2seq_decode", ["256", "1000"], "seq2seq decoding variants: BATCH or BATCH:jit (XLA)."
)
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


def seq2seq_setup(
    train_pairs, valid_pairs, units: int, batch_size: int, seed: int, jit_compile: bool = False
):
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
        train=TrainConfig(batch_size=batch_size, seed=seed, jit_compile=jit_compile),
    )
    src_vocab = Vocabulary.build((s for s, _ in train_pairs), "char")
    tgt_vocab = Vocabulary.build((t for _, t in train_pairs), "char")
    limits = (config.data.max_source_length, config.data.max_target_length)
    pad_multiple = config.data.bucket_width if jit_compile else 1
    train_enc, _ = encode_pairs(train_pairs, src_vocab, tgt_vocab, *limits)
    limit = config.data.batch_length_limit
    train_ds = make_dataset(
        train_enc,
        batch_size,
        shuffle=True,
        seed=seed,
        pad_multiple=pad_multiple,
        batch_length_limit=limit,
    )
    valid_ds = None
    if valid_pairs:
        valid_enc, _ = encode_pairs(valid_pairs, src_vocab, tgt_vocab, *limits)
        valid_ds = make_dataset(
            valid_enc, batch_size, pad_multiple=pad_multiple, batch_length_limit=limit
        )
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


def parse_variant(text: str) -> tuple[int, bool]:
    """'128' -> (128, False); '128:jit' -> (128, True)."""
    size, _, option = text.partition(":")
    if option not in ("", "jit"):
        raise ValueError(f"Expected BATCH or BATCH:jit. Received: {text!r}")
    return int(size), option == "jit"


def epoch_timer(times: list):
    """Returns a Keras callback appending epoch durations to ``times`` (fit's own costs left out)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    return EpochTimer()


def train_alternating(ref_model, ref_train, variants: dict, epochs: int, batch: int) -> list:
    """Trains the reference and every seq2seq variant one epoch at a time, in turn."""
    ref_times: list[float] = []
    for epoch in range(epochs):
        ref_model.fit(
            [ref_train.encoder_input, ref_train.decoder_input],
            ref_train.decoder_target,
            batch_size=batch,
            epochs=1,
            shuffle=True,
            verbose=0,
            callbacks=[epoch_timer(ref_times)],
        )
        line = [f"epoch {epoch + 1}: reference {ref_times[-1]:.1f}s"]
        for name, variant in variants.items():
            variant["model"].fit(
                variant["train_ds"],
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[epoch_timer(variant["times"])],
            )
            line.append(f"seq2seq {name} {variant['times'][-1]:.1f}s")
        print(", ".join(line), file=sys.stderr)
    return ref_times


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
    variants = {}
    for text in FLAGS.seq2seq_train:
        size, jit = parse_variant(text)
        config, src_vocab, tgt_vocab, train_ds, valid_ds, model = seq2seq_setup(
            train_pairs, valid_pairs, units, size, FLAGS.seed, jit
        )
        variants[text] = {
            "config": config,
            "train_ds": train_ds,
            "valid_ds": valid_ds,
            "model": model,
            "times": [],
            "flops": TRAIN_FLOPS_PER_FORWARD
            * forward_flops(*padded_steps(train_ds), src_vocab.size, tgt_vocab.size, units),
        }
    real_tokens = sum(len(t) + 1 for _, t in train_pairs)  # + END / EOS
    n = len(train_pairs)
    ref_flops = TRAIN_FLOPS_PER_FORWARD * forward_flops(
        n * ref_train.max_source_length,
        n * ref_train.max_target_length,
        len(ref_train.source_chars),
        len(ref_train.target_chars),
        units,
    )
    peak_before = matmul_peak_gflops()
    ref_times = train_alternating(ref_model, ref_train, variants, FLAGS.epochs, batch)
    steady = slice(1, None) if FLAGS.epochs > 1 else slice(None)
    ref_epoch = statistics.median(ref_times[steady])
    sources = [s for s, _ in valid_pairs]
    result = {
        "pairs_train": n,
        "pairs_valid": len(valid_pairs),
        "epochs": FLAGS.epochs,
        "units": units,
        "real_target_tokens_per_epoch": real_tokens,
        "reference": {
            "batch_size": batch,
            "epoch_s": ref_times,
            "epoch_median_s": ref_epoch,
            "tokens_per_s": real_tokens / ref_epoch,
            "train_gflops": ref_flops / ref_epoch / 1e9,
            "val_loss": reference.masked_validation_loss(ref_model, ref_valid),
        },
        "seq2seq_train": {},
    }
    for name, variant in variants.items():
        epoch_s = statistics.median(variant["times"][steady])
        config = variant["config"]
        config.decode.max_length = ref_train.max_target_length
        hypotheses = Translator(variant["model"], src_vocab, tgt_vocab, config).translate(sources)
        result["seq2seq_train"][name] = {
            "epoch_s": variant["times"],
            "epoch_median_s": epoch_s,
            "tokens_per_s": real_tokens / epoch_s,
            "speedup": ref_epoch / epoch_s,
            "train_gflops": variant["flops"] / epoch_s / 1e9,
            "val_loss": float(
                variant["model"].evaluate(variant["valid_ds"], verbose=0, return_dict=True)["loss"]
            ),
            "exact_match": exact_match(hypotheses, valid_pairs),
        }

    # The recipe's weights in a seq2seq model: same function, seq2seq's decoder.
    config = next(iter(variants.values()))["config"]
    ref_as_ours = build_model(config.model, src_vocab.size, tgt_vocab.size)
    reference.transfer_weights(ref_model, ref_train, ref_as_ours, src_vocab, tgt_vocab)
    fast = Translator(ref_as_ours, src_vocab, tgt_vocab, config)
    fast_out = fast.translate(sources)
    result["reference"]["exact_match"] = exact_match(fast_out, valid_pairs)
    decoders = {}
    for text in FLAGS.seq2seq_decode:
        size, jit = parse_variant(text)
        decode_config = copy.deepcopy(config)
        decode_config.decode.batch_size = size
        decode_config.decode.jit_compile = jit
        translator = Translator(ref_as_ours, src_vocab, tgt_vocab, decode_config)
        translator.translate(sources)  # compile outside the timings
        decoders[text] = (translator, [])

    slow = reference.ReferenceInference(ref_model, ref_train)
    subset = sources[: FLAGS.reference_decode]
    slow.decode(subset[0])  # build predict functions outside the timings
    ref_rates = []
    for _ in range(FLAGS.decode_repeats):
        start = time.perf_counter()
        slow_out = [slow.decode(s) for s in subset]
        ref_rates.append(len(subset) / (time.perf_counter() - start))
        for translator, rates in decoders.values():
            start = time.perf_counter()
            fast_out = translator.translate(sources)
            rates.append(len(sources) / (time.perf_counter() - start))
    ref_rate = statistics.median(ref_rates)
    result["reference"].update(
        sentences_per_s=ref_rates,
        decode_median=ref_rate,
        decode_gflops=sum(
            forward_flops(
                max(1, len(s)),
                len(o) + 1,
                len(ref_train.source_chars),
                len(ref_train.target_chars),
                units,
            )
            for s, o in zip(subset, slow_out, strict=True)
        )
        / (len(subset) / ref_rate)
        / 1e9,
    )
    result["decode_agreement"] = sum(
        a == b for a, b in zip(slow_out, fast_out, strict=False)
    ) / len(subset)
    result["seq2seq_decode"] = {}
    for name, (translator, rates) in decoders.items():
        rate = statistics.median(rates)
        flops = decoding_flops(translator, sources, fast_out, units)
        result["seq2seq_decode"][name] = {
            "sentences_per_s": rates,
            "median": rate,
            "speedup": rate / ref_rate,
            "gflops": flops / (len(sources) / rate) / 1e9,
        }
    result["matmul_peak_gflops"] = max(peak_before, matmul_peak_gflops())
    return result


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
        ref = s["reference"]
        print(
            f"{'training (LSTM ' + str(s['units']) + ', ' + str(s['pairs_train']) + ' pairs)':<36}"
            f"{'batch':>7}{'s/epoch':>9}{'tokens/s':>10}{'ratio':>7}{'GFLOP/s':>9}"
            f"{'val loss':>10}{'exact':>7}"
        )
        print(
            f"{'reference: dense one-hot, rmsprop':<36}{ref['batch_size']:>7}"
            f"{ref['epoch_median_s']:>9.2f}{ref['tokens_per_s']:>10.0f}{1:>7.2f}"
            f"{ref['train_gflops']:>9.1f}{ref['val_loss']:>10.4f}{ref['exact_match']:>7.3f}"
        )
        for name, v in s["seq2seq_train"].items():
            size, jit = parse_variant(name)
            label = "seq2seq" + (" + XLA" if jit else "")
            print(
                f"{label:<36}{size:>7}{v['epoch_median_s']:>9.2f}{v['tokens_per_s']:>10.0f}"
                f"{v['speedup']:>7.2f}{v['train_gflops']:>9.1f}{v['val_loss']:>10.4f}"
                f"{v['exact_match']:>7.3f}"
            )
        print(
            f"\n{'greedy decoding (' + str(s['pairs_valid']) + ' sentences)':<36}{'batch':>7}"
            f"{'sent/s':>10}{'ratio':>9}{'GFLOP/s':>9}"
        )
        print(
            f"{'reference: per-step predict()':<36}{1:>7}{ref['decode_median']:>10.2f}{1:>9.0f}"
            f"{ref['decode_gflops']:>9.2f}"
        )
        for name, v in s["seq2seq_decode"].items():
            size, jit = parse_variant(name)
            label = "seq2seq compiled loop" + (" + XLA" if jit else "")
            print(
                f"{label:<36}{size:>7}{v['median']:>10.1f}{v['speedup']:>9.0f}{v['gflops']:>9.1f}"
            )
        peak = s["matmul_peak_gflops"]
        print(
            f"\nmatmul limit (fastest 2048x2048 float32 matmul) {peak:.1f} GFLOP/s: best training "
            f"variant at {100 * max(v['train_gflops'] for v in s['seq2seq_train'].values()) / peak:.0f}%,"
            f" best decoding variant at "
            f"{100 * max(v['gflops'] for v in s['seq2seq_decode'].values()) / peak:.0f}% of it"
        )
        print(
            f"decoders agree on {100 * s['decode_agreement']:.0f}% of the sentences both decoded; "
            "validation loss counts real target tokens only (padding excluded) on both sides"
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
