"""Thin entry point; see seq2seq.cli.export."""

from seq2seq.cli.export import run

if __name__ == "__main__":
    run()
