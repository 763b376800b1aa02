"""Thin entry point; see seq2seq.cli.prepare."""

from seq2seq.cli.prepare import run

if __name__ == "__main__":
    run()
