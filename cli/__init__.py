"""The `skiff` command: kubectl-shaped, a client of the kernel (`skiff`) as kubectl is of
client-go, never a part of it. It parses, calls the kernel (or the local-cluster package
`cluster` for `skiff up`/`down`) and prints. One module per subcommand in `cli.commands`."""

import os

# gRPC's core writes a failed TLS handshake to stderr itself; the CLI says what went wrong
# in one line of its own (skiff.client.errors.TransportSecurity).
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
