"""Export for serving: a TensorFlow SavedModel that maps UTF-8 strings to translations.

The SavedModel holds the whole path from text to text in one graph:
tokenisation (char, word or subword, as the model's vocabularies say), vocabulary
lookup, truncation to ``data.max_source_length``, the decoding strategy (greedy,
beam or sampling, compiled as one loop) and detokenisation. It loads with
``tf.saved_model.load`` alone; ``seq2seq`` is not needed to serve it. A model
with a "subword" vocabulary splits words with tensorflow-text's
``FastWordpieceTokenizer`` (its vocabulary is inside the graph): run
``import tensorflow_text`` before loading it, to register those ops.

Signatures (all take any batch size):

- ``serving_default``: ``sentences`` string [batch] -> ``translations`` string [batch].
- ``translate_ids``: ``sentences`` string [batch] -> ``ids`` int32
  [batch, n, max_length], ``lengths`` int32 [batch, n], ``scores`` float32
  [batch, n] (``n`` = the strategy's hypotheses, best first).
- ``tokenize``: ``sentences`` -> ``source_ids`` int32 [batch, time] (PAD_ID padded).
- ``encode``: ``source_ids`` -> ``state_0`` ... ``state_{k-1}`` float32
  [batch, decoder_units], the decoder's initial states (the inference encoder);
  with attention also ``memory_values`` and ``memory_keys`` float32
  [batch, src_time, decoder_units] and ``memory_mask`` float32 [batch, src_time].
- ``decode_step``: ``tokens`` int32 [batch] and the states (and memory) ->
  ``probabilities`` float32 [batch, target_vocab_size] and the next states
  (the memory comes back unchanged): the one-step decoder.
- ``detokenize``: ``ids`` int32 [batch, time], ``lengths`` int32 [batch] -> ``text``.

The vocabularies are assets (``assets/source_vocab.txt``,
``assets/target_vocab.txt``): one token per line in id order, each token's
UTF-8 bytes in URL-safe base64 without padding, so that any token (a line
break, a space) fits on one line. ``assets.extra/`` keeps the model
directory's ``config.json`` and JSON vocabularies for reference.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile

import tensorflow as tf
from absl import logging

from seq2seq.atomic import TEMP_PREFIX
from seq2seq.checkpoint import SOURCE_VOCAB_FILENAME, TARGET_VOCAB_FILENAME
from seq2seq.decoding import DecodingModel
from seq2seq.model import build_inference_graph, inference_state_count
from seq2seq.subword import SUFFIX_MARK, make_wordpiece
from seq2seq.translator import SOURCE_LENGTH_MULTIPLE, Translator
from seq2seq.vocab import BOS_ID, PAD_ID, UNK_ID, Vocabulary

SERVING_SIGNATURE = "serving_default"
SOURCE_ASSET = "source_vocab.txt"
TARGET_ASSET = "target_vocab.txt"
EXTRA_DIRNAME = "assets.extra"


class ExportError(ValueError):
    """The export cannot be written (for example the directory is already in use)."""


def encode_token(token: str) -> bytes:
    """The asset form of a token: URL-safe base64 of its UTF-8 bytes, no padding."""
    return base64.urlsafe_b64encode(token.encode("utf-8")).rstrip(b"=")


def write_vocab_asset(vocab: Vocabulary, path: str) -> None:
    """Writes ``vocab``'s tokens in id order, one ``encode_token`` line each."""
    with open(path, "wb") as f:
        f.write(b"".join(encode_token(token) + b"\n" for token in vocab.tokens))


def _whitespace_pattern() -> str:
    """An RE2 class of exactly the characters Python's ``str.split()`` splits on."""
    spaces = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    return "[" + "".join(f"\\x{{{c:x}}}" for c in spaces) + "]+"


def join_wordpieces(pieces: tf.RaggedTensor) -> tf.Tensor:
    """``seq2seq.subword.join_pieces`` in the graph: string pieces [batch, None] -> text [batch].

    A continuation piece ("##ing") loses its mark and is glued to the text
    before it; any other piece starts a new word after one space.
    """

    def render(flat):
        tail = tf.strings.regex_replace(flat, f"^{SUFFIX_MARK}", "", replace_global=False)
        return tf.where(tf.equal(tail, flat), tf.strings.join([" ", flat]), tail)

    joined = tf.strings.reduce_join(tf.ragged.map_flat_values(render, pieces), axis=1)
    return tf.strings.regex_replace(joined, "^ ", "", replace_global=False)


class TranslationModule(tf.Module):
    """The exported object: the model's variables, the vocabulary tables and the signatures.

    Args:
        translator: a ``Translator`` (its model, vocabularies, config and strategy).
        source_asset: path of the source vocabulary asset (``write_vocab_asset``).
        target_asset: path of the target vocabulary asset.
    """

    def __init__(self, translator: Translator, source_asset: str, target_asset: str):
        super().__init__(name="seq2seq_translation")
        config = translator.config
        self.decoding_model = DecodingModel(
            translator.model, translator.strategy, config.decode.max_length
        )
        graph = build_inference_graph(translator.model)
        self.encoder_model = graph.encoder_model
        self.step_model = graph.step_model
        self.source_vocab_file = tf.saved_model.Asset(source_asset)
        self.target_vocab_file = tf.saved_model.Asset(target_asset)
        self.source_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.source_vocab_file,
                tf.string,
                tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=UNK_ID,
        )
        self.target_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.target_vocab_file,
                tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string,
                tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="",
        )
        self._source_tokenizer = translator.source_vocab.tokenizer.name
        self._target_tokenizer = translator.target_vocab.tokenizer.name
        self.source_wordpiece = None
        if self._source_tokenizer == "subword":
            self.source_wordpiece = make_wordpiece(translator.source_vocab.tokens)
        self._max_source_length = config.data.max_source_length
        self._whitespace = _whitespace_pattern()
        model_config = translator.model.model_config
        num_states = inference_state_count(model_config)
        units = model_config.decoder_units
        state_specs = [
            tf.TensorSpec([None, units], tf.float32, name=f"state_{i}") for i in range(num_states)
        ]
        self._state_names = [spec.name for spec in state_specs]
        if model_config.attention != "none":
            state_specs += [
                tf.TensorSpec([None, None, units], tf.float32, name="memory_values"),
                tf.TensorSpec([None, None, units], tf.float32, name="memory_keys"),
                tf.TensorSpec([None, None], tf.float32, name="memory_mask"),
            ]
            self._state_names += [spec.name for spec in state_specs[num_states:]]
        self.encode = tf.function(
            self._encode_states,
            input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")],
        )
        self.decode_step = tf.function(
            self._decode_step,
            input_signature=[tf.TensorSpec([None], tf.int32, name="tokens"), *state_specs],
        )

    def _split(self, sentences):
        """Tokens of every sentence, as the model's Python tokenizer makes them: ragged [batch, None]."""
        text = tf.strings.unicode_transcode(
            sentences, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        if self._source_tokenizer == "char":
            return tf.strings.unicode_split(text, "UTF-8")
        spaced = tf.strings.strip(tf.strings.regex_replace(text, self._whitespace, " "))
        words = tf.strings.split(spaced, sep=" ")
        return tf.ragged.boolean_mask(words, tf.not_equal(words, ""))

    def _source_ids(self, sentences):
        """Source ids of every sentence, as ``Vocabulary.encode`` makes them: ragged int32 [batch, None]."""
        tokens = self._split(sentences)  # subword: the words
        if self.source_wordpiece is not None:
            pieces = self.source_wordpiece.tokenize(tokens)  # [batch, words, pieces]
            return tf.cast(pieces.merge_dims(1, 2), tf.int32)
        return tf.cast(self.source_table.lookup(tf.io.encode_base64(tokens)), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def tokenize(self, sentences):
        ids = self._source_ids(sentences)[:, : self._max_source_length]
        # The Translator's padding: the longest source, rounded up to a multiple of 8.
        padded = ids.to_tensor(default_value=PAD_ID)
        longest = tf.maximum(tf.shape(padded)[1], 1)
        width = -(-longest // SOURCE_LENGTH_MULTIPLE) * SOURCE_LENGTH_MULTIPLE
        extra = width - tf.shape(padded)[1]
        return {"source_ids": tf.pad(padded, [[0, 0], [0, extra]], constant_values=PAD_ID)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="ids"),
            tf.TensorSpec([None], tf.int32, name="lengths"),
        ]
    )
    def detokenize(self, ids, lengths):
        tokens = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
        keep = tf.logical_and(tf.not_equal(tokens, PAD_ID), tf.not_equal(tokens, BOS_ID))
        tokens = tf.ragged.boolean_mask(tokens, keep)
        words = tf.io.decode_base64(
            tf.ragged.map_flat_values(self.target_table.lookup, tf.cast(tokens, tf.int64))
        )
        if self._target_tokenizer == "subword":
            return {"text": join_wordpieces(words)}
        separator = "" if self._target_tokenizer == "char" else " "
        return {"text": tf.strings.reduce_join(words, axis=1, separator=separator)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate_ids(self, sentences):
        source = self.tokenize(sentences)["source_ids"]
        result = self.decoding_model(source)
        return {key: result[key] for key in ("ids", "lengths", "scores")}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate(self, sentences):
        result = self.translate_ids(sentences)
        best = self.detokenize(result["ids"][:, 0], result["lengths"][:, 0])
        return {"translations": best["text"]}

    def _encode_states(self, source_ids):
        states = self.encoder_model(source_ids)
        return dict(zip(self._state_names, states, strict=True))

    def _decode_step(self, tokens, *states):
        outputs = self.step_model([tokens, *states])
        return {
            "probabilities": outputs[0],
            **dict(zip(self._state_names, outputs[1:], strict=True)),
        }


def export_saved_model(translator: Translator, export_dir: str, overwrite: bool = False) -> str:
    """Writes ``translator`` as a SavedModel to ``export_dir`` (see the module docstring).

    The export is written next to ``export_dir`` under a temporary name and
    renamed into place, so ``export_dir`` never holds half an export.

    Args:
        translator: what to export, decoding strategy included.
        export_dir: the SavedModel directory to create.
        overwrite: replace an existing ``export_dir``.

    Returns:
        ``export_dir``.

    Raises:
        ExportError: when ``export_dir`` exists (and ``overwrite`` is false) or
            is not a directory.
    """
    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir):
        if not os.path.isdir(export_dir):
            raise ExportError(f"{export_dir} exists and is not a directory.")
        if os.listdir(export_dir) and not overwrite:
            raise ExportError(
                f"{export_dir} already exists and is not empty; choose another directory "
                "or pass overwrite=True (--overwrite)."
            )
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent)
    try:
        assets = os.path.join(staging, "vocab")
        os.makedirs(assets)
        source_asset = os.path.join(assets, SOURCE_ASSET)
        target_asset = os.path.join(assets, TARGET_ASSET)
        write_vocab_asset(translator.source_vocab, source_asset)
        write_vocab_asset(translator.target_vocab, target_asset)
        module = TranslationModule(translator, source_asset, target_asset)
        out = os.path.join(staging, "saved_model")
        signatures = {
            SERVING_SIGNATURE: module.translate,
            "translate_ids": module.translate_ids,
            "tokenize": module.tokenize,
            "detokenize": module.detokenize,
            "encode": module.encode,
            "decode_step": module.decode_step,
        }
        # TensorFlow logs every renamed signature input and saver detail at INFO.
        verbosity = logging.get_verbosity()
        logging.set_verbosity(logging.WARNING)
        try:
            tf.saved_model.save(module, out, signatures=signatures)
        finally:
            logging.set_verbosity(verbosity)
        extra = os.path.join(out, EXTRA_DIRNAME)
        os.makedirs(extra, exist_ok=True)
        translator.config.save(extra)
        translator.source_vocab.save(os.path.join(extra, SOURCE_VOCAB_FILENAME))
        translator.target_vocab.save(os.path.join(extra, TARGET_VOCAB_FILENAME))
        if os.path.isdir(export_dir):
            old = os.path.join(staging, "previous")
            os.rename(export_dir, old)
        os.rename(out, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir
