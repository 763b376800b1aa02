"""The canonical Keras character-level recipe, written from its description, as the baseline.

What it does (and what seq2seq avoids):

- every sequence padded to the corpus maximum and one-hot encoded on the host
  as dense float32 arrays: encoder input [pairs, max_src, src_chars], decoder
  input and decoder target [pairs, max_tgt, tgt_chars]; the target is
  START + text + END with START = "\\t" and END = "\\n";
- an ``LSTM(units, return_state=True)`` encoder whose (h, c) initialise a
  teacher-forced ``LSTM(units, return_sequences=True)`` decoder and a softmax
  ``Dense``; rmsprop and categorical cross-entropy (padding included);
- inference with an encoder model and a one-step decoder model driven by
  ``predict()`` one sentence and one step at a time.

Only ``keras`` and ``numpy`` are used, so it runs on any Keras backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np

START, END = "\t", "\n"
# A logit that keeps a class out of the argmax while staying finite in float16.
NEVER_LOGIT = -1.0e4


@dataclasses.dataclass
class ReferenceData:
    """The recipe's dense arrays and character tables."""

    source_chars: list[str]
    target_chars: list[str]
    max_source_length: int
    max_target_length: int  # with START and END
    encoder_input: np.ndarray  # [pairs, max_src, src_chars] float32
    decoder_input: np.ndarray  # [pairs, max_tgt, tgt_chars] float32
    decoder_target: np.ndarray  # [pairs, max_tgt, tgt_chars] float32

    @property
    def nbytes(self) -> int:
        return self.encoder_input.nbytes + self.decoder_input.nbytes + self.decoder_target.nbytes


def array_bytes(pairs: Sequence[tuple[str, str]]) -> int:
    """Returns the bytes the recipe's three float32 arrays need for ``pairs``."""
    src_chars = {c for s, _ in pairs for c in s}
    tgt_chars = {c for _, t in pairs for c in t} | {START, END}
    max_src = max(len(s) for s, _ in pairs)
    max_tgt = max(len(t) for _, t in pairs) + 2
    return 4 * len(pairs) * (max_src * len(src_chars) + 2 * max_tgt * len(tgt_chars))


def prepare(pairs: Sequence[tuple[str, str]], tables: ReferenceData | None = None) -> ReferenceData:
    """Builds the recipe's arrays; ``tables`` reuses another split's characters and lengths."""
    targets = [START + t + END for _, t in pairs]
    if tables is None:
        source_chars = sorted({c for s, _ in pairs for c in s})
        target_chars = sorted({c for t in targets for c in t})
        max_src = max(len(s) for s, _ in pairs)
        max_tgt = max(len(t) for t in targets)
    else:
        source_chars, target_chars = tables.source_chars, tables.target_chars
        max_src, max_tgt = tables.max_source_length, tables.max_target_length
    src_index = {c: i for i, c in enumerate(source_chars)}
    tgt_index = {c: i for i, c in enumerate(target_chars)}
    encoder_input = np.zeros((len(pairs), max_src, len(source_chars)), "float32")
    decoder_input = np.zeros((len(pairs), max_tgt, len(target_chars)), "float32")
    decoder_target = np.zeros((len(pairs), max_tgt, len(target_chars)), "float32")
    for row, ((source, _), target) in enumerate(zip(pairs, targets, strict=True)):
        for t, char in enumerate(source[:max_src]):
            if char in src_index:
                encoder_input[row, t, src_index[char]] = 1.0
        for t, char in enumerate(target[:max_tgt]):
            if char in tgt_index:
                decoder_input[row, t, tgt_index[char]] = 1.0
                if t > 0:
                    decoder_target[row, t - 1, tgt_index[char]] = 1.0
    return ReferenceData(
        source_chars,
        target_chars,
        max_src,
        max_tgt,
        encoder_input,
        decoder_input,
        decoder_target,
    )


def build_model(num_source_chars: int, num_target_chars: int, units: int = 256) -> keras.Model:
    """The recipe's training model, compiled with rmsprop and categorical cross-entropy."""
    encoder_inputs = keras.Input(shape=(None, num_source_chars), name="encoder_inputs")
    _, h, c = keras.layers.LSTM(units, return_state=True, name="encoder_lstm")(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, num_target_chars), name="decoder_inputs")
    decoder_outputs, _, _ = keras.layers.LSTM(
        units, return_sequences=True, return_state=True, name="decoder_lstm"
    )(decoder_inputs, initial_state=[h, c])
    probabilities = keras.layers.Dense(
        num_target_chars, activation="softmax", name="decoder_dense"
    )(decoder_outputs)
    model = keras.Model([encoder_inputs, decoder_inputs], probabilities)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class ReferenceInference:
    """The recipe's inference: encoder model + one-step decoder model, one predict() per step."""

    def __init__(self, model: keras.Model, data: ReferenceData):
        self.data = data
        encoder_lstm = model.get_layer("encoder_lstm")
        decoder_lstm = model.get_layer("decoder_lstm")
        dense = model.get_layer("decoder_dense")
        units = encoder_lstm.units
        source = keras.Input(shape=(None, len(data.source_chars)))
        _, h, c = encoder_lstm(source)
        self.encoder_model = keras.Model(source, [h, c])
        token = keras.Input(shape=(None, len(data.target_chars)))
        h_in, c_in = keras.Input(shape=(units,)), keras.Input(shape=(units,))
        out, h_out, c_out = decoder_lstm(token, initial_state=[h_in, c_in])
        self.decoder_model = keras.Model([token, h_in, c_in], [dense(out), h_out, c_out])
        self.src_index = {c: i for i, c in enumerate(data.source_chars)}

    def encode_source(self, text: str) -> np.ndarray:
        """One-hot source [1, len, chars], unpadded (padding would change the states)."""
        array = np.zeros((1, max(1, len(text)), len(self.data.source_chars)), "float32")
        for t, char in enumerate(text):
            if char in self.src_index:
                array[0, t, self.src_index[char]] = 1.0
        return array

    def decode(self, text: str, max_length: int | None = None) -> str:
        """Greedy decoding of one sentence, one ``predict()`` call per output character."""
        max_length = max_length or self.data.max_target_length
        h, c = self.encoder_model.predict(self.encode_source(text), verbose=0)
        token = np.zeros((1, 1, len(self.data.target_chars)), "float32")
        token[0, 0, self.data.target_chars.index(START)] = 1.0
        decoded = []
        for _ in range(max_length):
            probabilities, h, c = self.decoder_model.predict([token, h, c], verbose=0)
            index = int(np.argmax(probabilities[0, -1]))
            char = self.data.target_chars[index]
            if char == END:
                break
            decoded.append(char)
            token = np.zeros_like(token)
            token[0, 0, index] = 1.0
        return "".join(decoded)


def masked_validation_loss(model: keras.Model, data: ReferenceData, batch_size: int = 256):
    """Cross-entropy of the recipe's model over real target characters only (END included)."""
    total, count = 0.0, 0
    for start in range(0, len(data.encoder_input), batch_size):
        end = start + batch_size
        probabilities = model.predict_on_batch(
            [data.encoder_input[start:end], data.decoder_input[start:end]]
        )
        target = data.decoder_target[start:end]
        real = target.sum(-1) > 0  # [batch, time]
        chosen = (np.asarray(probabilities) * target).sum(-1)
        total += float(-np.log(np.maximum(chosen[real], 1e-12)).sum())
        count += int(real.sum())
    return total / count


def transfer_weights(
    reference: keras.Model, data: ReferenceData, seq2seq_model, src_vocab, tgt_vocab
):
    """Copies the recipe's trained weights into a 1-layer LSTM ``Seq2Seq`` with one-hot inputs.

    Rows of the input kernels and columns of the output layer are re-indexed
    from the recipe's character tables to the vocabularies (START -> BOS,
    END -> EOS); classes the recipe does not have get a NEVER_LOGIT bias.
    After this both models compute the same function on every sentence.
    """
    from seq2seq.vocab import BOS_ID, EOS_ID

    def rows(kernel, chars, vocab, extra):
        index = {c: i for i, c in enumerate(chars)}
        out = np.zeros((vocab.size, kernel.shape[1]), "float32")
        for token_id, token in enumerate(vocab.tokens):
            char = extra.get(token_id, token)
            if char in index:
                out[token_id] = kernel[index[char]]
        return out

    enc_k, enc_r, enc_b = reference.get_layer("encoder_lstm").get_weights()
    dec_k, dec_r, dec_b = reference.get_layer("decoder_lstm").get_weights()
    dense_k, dense_b = reference.get_layer("decoder_dense").get_weights()
    encoder_lstm = seq2seq_model.encoder.rnn_layers[0]
    decoder_lstm = seq2seq_model.decoder.rnn_layers[0]
    encoder_lstm.set_weights([rows(enc_k, data.source_chars, src_vocab, {}), enc_r, enc_b])
    decoder_lstm.set_weights(
        [rows(dec_k, data.target_chars, tgt_vocab, {BOS_ID: START}), dec_r, dec_b]
    )
    out_k = rows(dense_k.T, data.target_chars, tgt_vocab, {EOS_ID: END}).T
    out_b = np.full((tgt_vocab.size,), NEVER_LOGIT, "float32")
    index = {c: i for i, c in enumerate(data.target_chars)}
    for token_id, token in enumerate(tgt_vocab.tokens):
        char = END if token_id == EOS_ID else token
        if char in index and token_id != BOS_ID:
            out_b[token_id] = dense_b[index[char]]
    seq2seq_model.decoder.projection.set_weights([out_k, out_b])
