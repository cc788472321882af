"""One module per ``tandem`` subcommand, each with ``register(subparsers)``."""
