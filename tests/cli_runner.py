"""Runs a command-line program's ``main`` in-process, as tests/test_reliability_cli.py does.

In-process runs see mocks (``tfds.testing.mock_data``) and skip the start-up
of a new Python, so many cases stay fast.
"""

from absl import flags

FLAGS = flags.FLAGS


def run_cli(module, args, capfd):
    """Parses ``args`` and runs ``module.main``; returns (exit status, stdout, stderr)."""
    capfd.readouterr()
    FLAGS.unparse_flags()
    FLAGS([module.__name__, *args])
    try:
        module.main([module.__name__])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    finally:
        FLAGS.unparse_flags()
    out, err = capfd.readouterr()
    return status, out, err
