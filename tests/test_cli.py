"""The command-line programs, run as a user runs them (subprocesses)."""

import json
import os
import subprocess
import sys

import pytest

from seq2seq.tasks import write_tsv


def _run(module, *args, stdin=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", f"seq2seq.cli.{module}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    words = [a + b + c for a in "abcd" for b in "abcd" for c in "abcd"]
    pairs = [(w, w[::-1]) for w in words]
    train_file, test_file = str(root / "train.tsv"), str(root / "test.tsv")
    write_tsv(pairs, train_file)
    write_tsv(pairs[:10], test_file)
    model_dir = str(root / "model")
    result = _run(
        "train",
        f"--train_file={train_file}",
        f"--test_file={test_file}",
        f"--model_dir={model_dir}",
        "--cell=gru",
        "--units=16",
        "--epochs=2",
        "--batch_size=16",
        "--num_samples=3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, model_dir, test_file, result


def test_train_prints_samples_and_exact_match(trained):
    _, model_dir, _, result = trained
    assert "Sample translations" in result.stdout
    assert "Exact match on 10 held-out pairs" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model_dir"] == model_dir and summary["epochs"] == 2


def test_translate_keeps_one_line_per_input_in_order(trained):
    root, model_dir, _, _ = trained
    # U+2028 and form feed are characters inside a line, not line ends.
    result = _run("translate", f"--model_dir={model_dir}", stdin="abc\n\ndd\u2028d\nx\x0cyz\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.split("\n")) == 5  # 4 lines and the final newline
    output_file = str(root / "out.txt")
    input_file = str(root / "in.txt")
    with open(input_file, "w") as f:
        f.write("abc\r\nddd\n")
    result = _run(
        "translate",
        f"--model_dir={model_dir}",
        f"--input_file={input_file}",
        f"--output_file={output_file}",
        "--batch_size=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(output_file) as f:
        assert len(f.read().splitlines()) == 2


def test_evaluate_prints_json_metrics(trained):
    _, model_dir, test_file, _ = trained
    result = _run("evaluate", f"--model_dir={model_dir}", f"--test_file={test_file}")
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout)
    for key in ("num_examples", "loss", "token_accuracy", "exact_match", "bleu", "chrf"):
        assert key in scores
    assert scores["num_examples"] == 10


def test_translate_beam_n_best_and_seeded_sampling(trained):
    _, model_dir, _, _ = trained
    sources = "abc\ndcb\n\n"
    result = _run(
        "translate", f"--model_dir={model_dir}", "--beam_size=3", "--n_best=2", stdin=sources
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 6  # 2 hypotheses per input, best first, "score TAB text"
    for first, second in (lines[0:2], lines[2:4], lines[4:6]):
        (s1, t1), (s2, t2) = first.split("\t"), second.split("\t")
        assert float(s1) >= float(s2) and t1 != t2
    best = _run("translate", f"--model_dir={model_dir}", "--beam_size=3", stdin=sources)
    assert best.stdout.splitlines() == [line.split("\t")[1] for line in lines[::2]]
    args = ["--sampling_temperature=1.5", "--n_best=3", "--seed=5"]
    first = _run("translate", f"--model_dir={model_dir}", *args, stdin=sources)
    again = _run("translate", f"--model_dir={model_dir}", *args, stdin=sources)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(first.stdout.splitlines()) == 9 and first.stdout == again.stdout
    greedy = _run("translate", f"--model_dir={model_dir}", "--n_best=2", stdin=sources)
    assert greedy.returncode == 1 and "decode.n_best" in greedy.stderr


def test_export_gives_the_translations_of_translate(trained):
    root, model_dir, _, _ = trained
    export_dir = str(root / "export")
    result = _run(
        "export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--beam_size=3"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == export_dir
    words = [a + b + c + d for a in "abcd" for b in "abcd" for c in "abcd" for d in "ab"]
    sources = words + ["", "zz", "ab c"]
    translated = _run(
        "translate", f"--model_dir={model_dir}", "--beam_size=3", stdin="\n".join(sources) + "\n"
    )
    assert translated.returncode == 0, translated.stderr[-3000:]
    script = (
        "import sys, tensorflow as tf\n"
        "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "lines = sys.stdin.read().split('\\n')[:-1]\n"
        "out = f(sentences=tf.constant(lines))['translations'].numpy()\n"
        "sys.stdout.write(''.join(t.decode() + '\\n' for t in out))\n"
    )
    exported = subprocess.run(
        [sys.executable, "-c", script, export_dir],
        input="\n".join(sources) + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert exported.stdout.splitlines() == translated.stdout.splitlines()
    again = _run("export", f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_evaluate_with_beam_search(trained):
    _, model_dir, test_file, _ = trained
    result = _run(
        "evaluate", f"--model_dir={model_dir}", f"--test_file={test_file}", "--beam_size=4"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["strategy"] == "beam"


@pytest.mark.parametrize(
    "module,args,needle",
    [
        ("train", ["--train_file=/nonexistent.tsv", "--model_dir=/tmp/x"], "/nonexistent.tsv"),
        ("translate", ["--model_dir=/nonexistent_dir"], "config.json"),
        ("evaluate", ["--model_dir=/tmp"], "--test_file"),
        ("train", ["--units=-3"], "units=-3"),
        ("train", ["--task=dates", "--train_file=x.tsv", "--model_dir=/tmp/x"], "--task"),
        ("translate", ["--model_dir=/tmp", "--input_file=/"], "/"),
        ("translate", ["--beam_size=2", "--sampling_topk=3", "--model_dir=/tmp"], "pick one"),
    ],
)
def test_errors_are_messages_not_tracebacks(module, args, needle):
    result = _run(module, *args, stdin="")
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_tsv_line_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("abc\tcba\nno tab here\n")
    result = _run("train", f"--train_file={bad}", f"--model_dir={tmp_path / 'm'}")
    assert result.returncode == 1
    assert f"{bad}:2" in result.stderr
    assert "Traceback" not in result.stderr
