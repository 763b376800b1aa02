"""End to end: train a toy task into a model directory, translate, evaluate, resume."""

import json
import os
import random

import keras
import numpy as np
import pytest

from seq2seq.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig
from seq2seq.evaluation import evaluate
from seq2seq.training import (
    BEST_MODEL_FILENAME,
    LAST_MODEL_FILENAME,
    SOURCE_VOCAB_FILENAME,
    STATE_FILENAME,
    TARGET_VOCAB_FILENAME,
    train,
)
from seq2seq.translator import Translator

# Toy task: reverse a short string of letters. Stated accuracy: a 1-layer GRU
# of 64 units reaches at least 90% exact match on held-out strings in 12 epochs.
TOY_EPOCHS = 12
TOY_MIN_EXACT_MATCH = 0.90


def _reverse_pairs(n, seed):
    rng = random.Random(seed)
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice("abcdef") for _ in range(rng.randint(2, 5))))
    return [(w, w[::-1]) for w in sorted(words)]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    pairs = _reverse_pairs(2400, seed=0)
    random.Random(1).shuffle(pairs)
    train_pairs, valid_pairs, test_pairs = pairs[:2000], pairs[2000:2200], pairs[2200:]
    config = Config(
        model=ModelConfig(cell="gru", units=64),
        data=DataConfig(),
        train=TrainConfig(epochs=TOY_EPOCHS, batch_size=32, learning_rate=1e-2, seed=0),
    )
    model_dir = str(tmp_path_factory.mktemp("toy"))
    result = train(config, train_pairs, valid_pairs, model_dir, verbose=0)
    return config, model_dir, result, train_pairs, valid_pairs, test_pairs


def test_toy_task_reaches_stated_exact_match(toy_run):
    _, model_dir, result, _, _, test_pairs = toy_run
    scores = evaluate(Translator.load(model_dir), test_pairs)
    assert scores["num_examples"] == len(test_pairs)
    assert scores["exact_match"] >= TOY_MIN_EXACT_MATCH, scores
    assert 0.0 <= scores["token_accuracy"] <= 1.0
    assert scores["loss"] < result.history["loss"][0]


def test_model_dir_holds_config_vocabularies_and_models(toy_run):
    config, model_dir, result, *_ = toy_run
    for name in (
        "config.json",
        SOURCE_VOCAB_FILENAME,
        TARGET_VOCAB_FILENAME,
        BEST_MODEL_FILENAME,
        LAST_MODEL_FILENAME,
        STATE_FILENAME,
        "history.csv",
    ):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "logs"))  # TensorBoard events
    assert not os.path.exists(os.path.join(model_dir, "backup"))  # removed when finished
    saved = Config.load(model_dir)
    assert saved.model == config.model
    assert saved.decode.max_length >= 5
    with open(os.path.join(model_dir, STATE_FILENAME)) as f:
        state = json.load(f)
    assert state["finished"] and state["epochs_done"] == result.epochs_done


def test_finished_run_is_not_trained_again(toy_run):
    config, model_dir, result, train_pairs, valid_pairs, _ = toy_run
    before = os.path.getmtime(os.path.join(model_dir, BEST_MODEL_FILENAME))
    again = train(config, train_pairs, valid_pairs, model_dir, verbose=0)
    assert again.epochs_done == result.epochs_done
    assert os.path.getmtime(os.path.join(model_dir, BEST_MODEL_FILENAME)) == before


def test_other_architecture_in_same_model_dir_is_refused(toy_run):
    config, model_dir, _, train_pairs, valid_pairs, _ = toy_run
    other = Config(model=ModelConfig(cell="lstm", units=64), train=config.train)
    with pytest.raises(ConfigError, match="model.cell='gru'"):
        train(other, train_pairs, valid_pairs, model_dir, verbose=0)


def test_translator_returns_one_output_per_input_in_order(toy_run):
    _, model_dir, *_ = toy_run
    translator = Translator.load(model_dir)
    inputs = ["abc", "", "   ", "zzz😀", "fed", "a" * 1000, "abc"]
    outputs = translator.translate(inputs, batch_size=3)
    assert len(outputs) == len(inputs)
    assert all(isinstance(o, str) for o in outputs)
    assert outputs[0] == outputs[-1]
    assert outputs[0] == "cba"
    detailed = translator.translate_detailed(["abc"])
    assert detailed[0].text == "cba" and detailed[0].score <= 0.0


def test_forced_scores_match_decoded_scores_and_prefer_the_translation(toy_run):
    _, model_dir, *_ = toy_run
    sources = ["abc", "fed", "cab", ""]
    for overrides in ({}, {"strategy": "beam", "beam_size": 4, "n_best": 3}):
        translator = Translator.load(model_dir, decode_overrides=overrides)
        hypotheses = [h for row in translator.translate_nbest(sources) for h in row]
        repeated = [s for s in sources for _ in range(translator.strategy.num_hypotheses)]
        scores = translator.score(repeated, [h.text for h in hypotheses], batch_size=3)
        np.testing.assert_allclose(scores, [h.score for h in hypotheses], atol=1e-4)
    wrong = translator.score(["abc"], ["abc"])  # the reverse is the right answer
    assert wrong[0] < translator.score(["abc"], ["cba"])[0]
    with pytest.raises(ValueError, match="as many targets"):
        translator.score(["abc"], [])


def test_translator_load_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Translator.load(str(tmp_path))


class _Interrupt(Exception):
    pass


class _InterruptAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupt()


def test_interrupted_run_resumes_from_last_finished_epoch(tmp_path):
    pairs = _reverse_pairs(300, seed=5)
    config = Config(
        model=ModelConfig(cell="lstm", units=16),
        train=TrainConfig(epochs=4, batch_size=32, early_stopping_patience=0),
    )
    model_dir = str(tmp_path / "run")
    with pytest.raises(_Interrupt):
        train(
            config,
            pairs[:250],
            pairs[250:],
            model_dir,
            verbose=0,
            callbacks=[_InterruptAfterEpoch(1)],
        )
    with open(os.path.join(model_dir, STATE_FILENAME)) as f:
        state = json.load(f)
    assert state["epochs_done"] == 2 and not state["finished"]
    assert os.path.isdir(os.path.join(model_dir, "backup"))
    Translator.load(model_dir)  # the checkpoint written before the interruption loads
    result = train(config, pairs[:250], pairs[250:], model_dir, verbose=0)
    assert result.epochs_done == 4
    assert len(result.history["loss"]) == 2  # only epochs 3 and 4 ran again
    with open(os.path.join(model_dir, "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["0", "1", "2", "3"]


class _LearningRates(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_cosine_schedule_and_label_smoothing_go_on_after_resume(tmp_path):
    pairs = _reverse_pairs(120, seed=6)
    config = Config(
        model=ModelConfig(cell="gru", units=8),
        train=TrainConfig(
            epochs=3,
            batch_size=32,
            learning_rate=0.01,
            lr_schedule="cosine",
            label_smoothing=0.1,
            early_stopping_patience=0,
        ),
    )
    model_dir = str(tmp_path / "run")
    first, second = _LearningRates(), _LearningRates()
    with pytest.raises(_Interrupt):
        train(
            config,
            pairs[:100],
            pairs[100:],
            model_dir,
            verbose=0,
            callbacks=[first, _InterruptAfterEpoch(0)],
        )
    train(config, pairs[:100], pairs[100:], model_dir, verbose=0, callbacks=[second])
    steps = 4  # 100 pairs in batches of 32
    schedule = keras.optimizers.schedules.CosineDecay(0.01, 3 * steps, alpha=0.01)
    expected = [float(schedule(e * steps)) for e in (1, 2, 3)]
    np.testing.assert_allclose(first.values + second.values, expected, rtol=1e-4)
    assert np.isclose(expected[-1], 1e-4)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"])
def test_mixed_precision_trains_on_cpu_with_float32_variables(tmp_path, policy):
    pairs = _reverse_pairs(400, seed=3)
    config = Config(
        model=ModelConfig(cell="lstm", units=32, bidirectional=True),
        train=TrainConfig(epochs=4, batch_size=32, learning_rate=1e-2, mixed_precision=policy),
    )
    result = train(config, pairs[:360], pairs[360:], str(tmp_path), verbose=0)
    losses = result.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    translator = Translator.load(str(tmp_path))
    model = translator.model
    assert model.encoder.dtype_policy.name == policy  # kept in the .keras file
    assert all(v.dtype == "float32" for v in model.weights)
    outputs = model({"source": np.array([[4, 5]]), "decoder_input": np.array([[1, 4]])})
    assert outputs.dtype == "float32"  # logits stay float32 for the softmax and the loss
    assert len(translator.translate(["abc", ""])) == 2


def test_train_with_frozen_pretrained_source_embeddings(tmp_path):
    words = ["red", "blue", "green", "cat", "dog", "fish"]
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=8).round(4) for w in words[:5]}  # "fish" is missing
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    pairs = [(f"{a} {b}", f"{b} {a}") for a in words for b in words]
    config = Config(
        model=ModelConfig(cell="gru", units=16, source_input="embedding", embedding_dim=8),
        data=DataConfig(source_tokenizer="word", target_tokenizer="word"),
        train=TrainConfig(
            epochs=2, batch_size=8, source_embeddings=str(glove), freeze_embeddings=True
        ),
    )
    train(config, pairs, pairs[:4], str(tmp_path / "m"), verbose=0)
    translator = Translator.load(str(tmp_path / "m"))
    table = keras.ops.convert_to_numpy(translator.model.encoder.token_input.embeddings)
    for word, vector in vectors.items():  # frozen: still the file's vectors after training
        np.testing.assert_allclose(table[translator.source_vocab.token_to_id(word)], vector)
    assert Config.load(str(tmp_path / "m")).train.source_embeddings == str(glove)
