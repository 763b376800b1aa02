"""Thin entry point; see seq2seq.cli.translate."""

from seq2seq.cli.translate import run

if __name__ == "__main__":
    run()
