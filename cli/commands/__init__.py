"""One module per `skiff` subcommand; each exposes register(subparsers)."""
