"""Runs a command-line program's ``main`` in-process.

In-process runs see mocks (``tfds.testing.mock_data``) and skip the start-up
of a new Python, so many cases stay fast.
"""

from absl import flags

FLAGS = flags.FLAGS


def run_main(module, args, read_output):
    """Parses ``args`` and runs ``module.main``.

    Returns:
        (exit status, stdout, stderr): the output as ``read_output()`` returns it.
    """
    FLAGS.unparse_flags()
    FLAGS([module.__name__, *args])
    try:
        module.main([module.__name__])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    finally:
        FLAGS.unparse_flags()
    out, err = read_output()
    return status, out, err


def run_cli(module, args, capfd):
    """``run_main`` with the output captured by pytest's ``capfd`` (earlier output dropped)."""
    capfd.readouterr()
    return run_main(module, args, capfd.readouterr)
