"""The commands of ``python -m adasam``, one module each.

A command module exposes::

    NAME = "my-command"            # optional; default: the module name with "_" -> "-"
    HELP = "one line for --help"   # optional; default: the module docstring's first line
    USER_ERRORS = (ValueError,)    # optional; exceptions reported as one line + exit 2
                                   # (AdaSamError always is)

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace, settings: Settings) -> int: ...

and is registered by appending it to ``COMMANDS`` in :mod:`adasam.cli`. Keep the module's
top-level imports light (no torch): every command's ``add_arguments`` runs for each
invocation, ``--help`` included; import heavy modules inside ``run``.
"""
