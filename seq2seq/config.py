"""Typed, strict configuration: dataclasses saved as ``model_dir/config.json``.

Every section validates its own values in ``__post_init__``; ``Config.from_dict``
refuses unknown keys and ill-typed values with a message that names the key
(``model.units``) and quotes the value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from typing import Any

import numpy as np

from seq2seq.atomic import write_json_atomic
from seq2seq.subword import DEFAULT_VOCAB_SIZE as DEFAULT_SUBWORD_VOCAB_SIZE

CONFIG_VERSION = 1
CONFIG_FILENAME = "config.json"

CELL_TYPES = ("lstm", "gru", "simple_rnn")
SOURCE_INPUTS = ("onehot", "embedding", "features")
TARGET_INPUTS = ("onehot", "embedding")
ATTENTION_TYPES = ("none", "additive", "multiplicative")
TOKENIZER_NAMES = ("char", "word", "subword")
DECODING_STRATEGIES = ("greedy", "beam", "sampling")
PRECISION_POLICIES = ("none", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
LR_SCHEDULES = ("constant", "cosine")
MIN_VOCAB_SIZE = 4  # PAD, BOS, EOS, UNK


class ConfigError(ValueError):
    """A configuration value, key or file is invalid."""


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"Expected one of {list(choices)} for `{name}`. Received: {name}={value!r}"
        )


def _check_positive(name: str, value: int | float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"Expected a positive number for `{name}`. Received: {name}={value!r}")


def check_positive_ints(**values: Any) -> None:
    """Raises ValueError unless every value is a positive integer, quoting the first bad one.

    For function and layer arguments (``check_positive_ints(units=units)``).
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(
                f"Expected a positive integer for `{name}`. Received: {name}={value!r}"
            )


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"Expected a value in [0, 1) for `{name}`. Received: {name}={value!r}")


@dataclasses.dataclass
class ModelConfig:
    """Architecture of the encoder-decoder.

    Attributes:
        cell: Recurrent cell of encoder and decoder: "lstm", "gru" or "simple_rnn".
        units: Positive integer, state size of each encoder layer (and direction).
        layers: Positive integer, number of stacked layers in encoder and decoder.
        bidirectional: Whether the encoder reads the source in both directions.
            Forward and backward final states are concatenated, so the decoder
            has ``2 * units`` units.
        dropout: Input dropout rate of every recurrent layer.
        recurrent_dropout: Dropout rate on the recurrent state of every layer.
        source_input: How source tokens enter the encoder: "onehot" (ids made
            one-hot inside the graph), "embedding" or "features" (float vectors).
        target_input: How target tokens enter the decoder: "onehot" or "embedding".
        embedding_dim: Size of token embeddings when an input is "embedding".
        num_features: Feature vector size; required when source_input is "features".
        attention: "none" (the decoder sees the source through its initial
            states only), "additive" (Bahdanau) or "multiplicative" (Luong)
            attention of the decoder over the encoder outputs; see
            ``seq2seq.layers.attention``.
    """

    cell: str = "lstm"
    units: int = 256
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    source_input: str = "onehot"
    target_input: str = "onehot"
    embedding_dim: int = 128
    num_features: int | None = None
    attention: str = "none"

    def __post_init__(self) -> None:
        _check_choice("model.cell", self.cell, CELL_TYPES)
        _check_choice("model.attention", self.attention, ATTENTION_TYPES)
        _check_positive("model.units", self.units)
        _check_positive("model.layers", self.layers)
        _check_rate("model.dropout", self.dropout)
        _check_rate("model.recurrent_dropout", self.recurrent_dropout)
        _check_choice("model.source_input", self.source_input, SOURCE_INPUTS)
        _check_choice("model.target_input", self.target_input, TARGET_INPUTS)
        _check_positive("model.embedding_dim", self.embedding_dim)
        _check_positive("model.num_features", self.num_features, allow_none=True)
        if self.source_input == "features" and self.num_features is None:
            raise ConfigError(
                "Expected `model.num_features` when model.source_input='features'. "
                "Received: model.num_features=None"
            )

    @property
    def decoder_units(self) -> int:
        """State size of each decoder layer (twice ``units`` after a bidirectional encoder)."""
        return self.units * (2 if self.bidirectional else 1)


@dataclasses.dataclass
class DataConfig:
    """Tokenisation, vocabulary and batching.

    Attributes:
        source_tokenizer: "char", "word" or "subword" (WordPiece pieces learned
            from the training text; see ``seq2seq.subword``).
        target_tokenizer: "char", "word" or "subword".
        max_source_length: Longest source kept, in tokens; longer pairs are
            filtered out of training and counted.
        max_target_length: Longest target kept, in tokens (without BOS/EOS).
        min_count: Tokens seen fewer times in training become UNK.
        max_vocab_size: Optional cap on each vocabulary (reserved tokens included).
        subword_vocab_size: Size each "subword" vocabulary is learned to
            (reserved tokens included; ``max_vocab_size`` caps it too).
        bucket_width: Width in tokens of the length buckets used for batching.
        batch_length_limit: Buckets of sequences longer than this get
            proportionally smaller batches (at most batch_size times this
            many steps per batch), so memory stays bounded on long sequences.
    """

    source_tokenizer: str = "char"
    target_tokenizer: str = "char"
    max_source_length: int = 256
    max_target_length: int = 256
    min_count: int = 1
    max_vocab_size: int | None = None
    subword_vocab_size: int = DEFAULT_SUBWORD_VOCAB_SIZE
    bucket_width: int = 8
    batch_length_limit: int = 64

    def __post_init__(self) -> None:
        _check_choice("data.source_tokenizer", self.source_tokenizer, TOKENIZER_NAMES)
        _check_choice("data.target_tokenizer", self.target_tokenizer, TOKENIZER_NAMES)
        _check_positive("data.max_source_length", self.max_source_length)
        _check_positive("data.max_target_length", self.max_target_length)
        _check_positive("data.min_count", self.min_count)
        if self.max_vocab_size is not None and self.max_vocab_size < MIN_VOCAB_SIZE:
            raise ConfigError(
                f"Expected at least {MIN_VOCAB_SIZE} (the reserved tokens) for "
                f"`data.max_vocab_size`. Received: data.max_vocab_size={self.max_vocab_size!r}"
            )
        if self.subword_vocab_size < MIN_VOCAB_SIZE:
            raise ConfigError(
                f"Expected at least {MIN_VOCAB_SIZE} (the reserved tokens) for "
                "`data.subword_vocab_size`. "
                f"Received: data.subword_vocab_size={self.subword_vocab_size!r}"
            )
        _check_positive("data.bucket_width", self.bucket_width)
        _check_positive("data.batch_length_limit", self.batch_length_limit)

    def vocab_size_limit(self, tokenizer: str) -> int | None:
        """The size bound of a vocabulary built with ``tokenizer`` (None: no bound)."""
        if tokenizer != "subword":
            return self.max_vocab_size
        return min(self.subword_vocab_size, self.max_vocab_size or self.subword_vocab_size)


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and the training loop.

    Attributes:
        epochs: Number of passes over the training data.
        batch_size: Sentence pairs per batch.
        learning_rate: Adam learning rate (the peak one with a schedule).
        lr_schedule: "constant", or "cosine": the learning rate decays along a
            half cosine from ``learning_rate`` to 1% of it over ``epochs``
            epochs (by optimizer step, so a resumed run continues the curve).
        label_smoothing: Share of each target token's probability mass the
            loss spreads uniformly over the vocabulary (0: plain
            cross-entropy). Validation loss is computed the same way.
        clipnorm: Gradient norm clipping (per variable, as Keras' ``clipnorm``).
        seed: Seed of weight initialisation, dropout and data order.
        early_stopping_patience: Epochs without validation improvement before
            stopping; 0 disables early stopping.
        valid_fraction: Share of the training pairs held out for validation
            when no validation data is given.
        jit_compile: Compile the train step with XLA.
        mixed_precision: "none" (float32), "mixed_float16" or "mixed_bfloat16":
            the Keras dtype policy the model is built with (float16/bfloat16
            compute, float32 variables and logits; float16 adds loss scaling).
        distribution: "none" (one device), "mirrored" (``tf.distribute``
            over the machine's GPUs) or "multi_worker" (over several
            machines, described by the ``TF_CONFIG`` environment variable);
            see ``seq2seq.distribute``. The batch size is the global one,
            split between the replicas of all machines.
        source_embeddings: GloVe-format word vectors that initialise the
            source embedding (``model.source_input="embedding"``); see
            ``seq2seq.pretrained``. None: random initialisation.
        target_embeddings: The same for the target embedding.
        freeze_embeddings: Keep the pretrained embeddings fixed in training.
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    lr_schedule: str = "constant"
    label_smoothing: float = 0.0
    clipnorm: float = 5.0
    seed: int = 0
    early_stopping_patience: int = 5
    valid_fraction: float = 0.05
    jit_compile: bool = False
    mixed_precision: str = "none"
    distribution: str = "none"
    source_embeddings: str | None = None
    target_embeddings: str | None = None
    freeze_embeddings: bool = False

    def __post_init__(self) -> None:
        _check_positive("train.epochs", self.epochs)
        _check_choice("train.mixed_precision", self.mixed_precision, PRECISION_POLICIES)
        _check_choice("train.distribution", self.distribution, DISTRIBUTIONS)
        _check_positive("train.batch_size", self.batch_size)
        _check_positive("train.learning_rate", self.learning_rate)
        _check_choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_rate("train.label_smoothing", self.label_smoothing)
        _check_positive("train.clipnorm", self.clipnorm)
        if self.early_stopping_patience < 0:
            raise ConfigError(
                "Expected a non-negative integer for `train.early_stopping_patience`. "
                f"Received: train.early_stopping_patience={self.early_stopping_patience!r}"
            )
        if not 0.0 < self.valid_fraction < 1.0:
            raise ConfigError(
                "Expected a value in (0, 1) for `train.valid_fraction`. "
                f"Received: train.valid_fraction={self.valid_fraction!r}"
            )


@dataclasses.dataclass
class DecodeConfig:
    """Inference settings.

    Attributes:
        max_length: Length cap of a decoded sequence, in tokens (EOS excluded).
        batch_size: Sentences decoded together.
        jit_compile: Compile the decoding loop with XLA.
        strategy: "greedy", "beam" or "sampling" (``seq2seq.decoding``).
        beam_size: Hypotheses kept per sentence by beam search.
        n_best: Hypotheses returned per sentence: the best of the beam, or
            independent samples; 1 for greedy.
        length_penalty: Beam search ranks by log-probability divided by
            ``((5 + length) / 6) ** length_penalty``; 0 ranks by log-probability.
        sampling_temperature: Sampling draws from softmax(logits / temperature).
        sampling_topk: Sampling draws among the k most probable tokens (0: all).
        seed: Seed of sampling; the same seed gives the same samples.
    """

    max_length: int = 128
    batch_size: int = 256
    jit_compile: bool = False
    strategy: str = "greedy"
    beam_size: int = 4
    n_best: int = 1
    length_penalty: float = 0.0
    sampling_temperature: float = 1.0
    sampling_topk: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive("decode.max_length", self.max_length)
        _check_positive("decode.batch_size", self.batch_size)
        _check_choice("decode.strategy", self.strategy, DECODING_STRATEGIES)
        _check_positive("decode.beam_size", self.beam_size)
        _check_positive("decode.n_best", self.n_best)
        _check_positive("decode.sampling_temperature", self.sampling_temperature)
        if self.length_penalty < 0:
            raise ConfigError(
                "Expected a non-negative number for `decode.length_penalty`. "
                f"Received: decode.length_penalty={self.length_penalty!r}"
            )
        if self.sampling_topk < 0:
            raise ConfigError(
                "Expected a non-negative integer for `decode.sampling_topk`. "
                f"Received: decode.sampling_topk={self.sampling_topk!r}"
            )
        limit = {"greedy": 1, "beam": self.beam_size}.get(self.strategy)
        if limit is not None and self.n_best > limit:
            raise ConfigError(
                f"Expected `decode.n_best` at most {limit} with decode.strategy="
                f"{self.strategy!r}"
                + (" (the beam size)" if self.strategy == "beam" else "")
                + f". Received: decode.n_best={self.n_best}"
            )


@dataclasses.dataclass
class Config:
    """The whole resolved configuration of one model directory."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Returns the configuration as plain JSON-compatible data."""
        return dataclasses.asdict(self)

    def with_decode(self, overrides: dict[str, Any]) -> Config:
        """Returns a copy with the ``decode`` fields in ``overrides`` replaced.

        Raises:
            ConfigError: naming the unknown key or bad value (``decode.beam_size``).
        """
        decode = {**dataclasses.asdict(self.decode), **overrides}
        return dataclasses.replace(self, decode=build_dataclass(DecodeConfig, decode, "decode."))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        """Builds a configuration, refusing unknown keys and ill-typed values.

        Args:
            data: Nested dict as written by ``to_dict``; missing keys take defaults.
            source: Where the data comes from, quoted in error messages.

        Returns:
            The validated ``Config``.

        Raises:
            ConfigError: naming the source, the key and the bad value.
        """
        try:
            config = build_dataclass(cls, data, prefix="")
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None
        if config.version > CONFIG_VERSION:
            raise ConfigError(
                f"{source}: written by a newer seq2seq (config version {config.version}); "
                f"this version reads up to {CONFIG_VERSION}. Upgrade seq2seq to load it."
            )
        return config

    def save(self, model_dir: str) -> str:
        """Writes ``model_dir/config.json`` atomically and returns its path."""
        path = os.path.join(model_dir, CONFIG_FILENAME)
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def load(cls, model_dir: str) -> Config:
        """Reads ``model_dir/config.json``.

        Raises:
            FileNotFoundError: when the file is missing.
            ConfigError: when it is not valid JSON or not a valid configuration.
        """
        path = os.path.join(model_dir, CONFIG_FILENAME)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No configuration file at {path}")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not valid JSON ({error})") from None
        return cls.from_dict(data, source=path)


def build_dataclass(cls: type, data: Any, prefix: str = "") -> Any:
    """Builds dataclass ``cls`` from ``data``, checking keys and value types.

    Raises:
        ConfigError: naming the key (``prefix`` + name) and the bad value.
    """
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the configuration"
        raise ConfigError(f"Expected a mapping for `{where}`. Received: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {[prefix + k for k in unknown]}; "
            f"known keys: {[prefix + k for k in fields]}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build_dataclass(hint, value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(f"{prefix}{key}", value, hint)
    return cls(**kwargs)


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Returns ``value`` if it matches the type hint (ints accepted for floats)."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return value
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    names = " or ".join("None" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(f"Expected {names} for `{name}`. Received: {name}={value!r}")
