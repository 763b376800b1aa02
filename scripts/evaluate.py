"""Thin entry point; see seq2seq.cli.evaluate."""

from seq2seq.cli.evaluate import run

if __name__ == "__main__":
    run()
