"""Keras layers of the encoder-decoder: inputs, encoder, bridge, decoder."""

from seq2seq.layers.attention import Attention, AttentionMemory
from seq2seq.layers.bridge import ConcatBridge
from seq2seq.layers.decoder import Decoder
from seq2seq.layers.encoder import Encoder
from seq2seq.layers.inputs import OneHot
from seq2seq.layers.recurrent import EncoderOutput, state_count

__all__ = [
    "Attention",
    "AttentionMemory",
    "ConcatBridge",
    "Decoder",
    "Encoder",
    "EncoderOutput",
    "OneHot",
    "state_count",
]
