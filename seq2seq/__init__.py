"""seq2seq: encoder-decoder RNN models for translation-style tasks (Keras 3)."""
