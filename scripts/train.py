"""Thin entry point; see seq2seq.cli.train."""

from seq2seq.cli.train import run

if __name__ == "__main__":
    run()
