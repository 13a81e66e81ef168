"""Run the fake server until SIGTERM or SIGINT: ``python -m tests.fakeserver --port 0``.

Prints one line, ``READY http://127.0.0.1:PORT``, once it accepts connections.
"""

from __future__ import annotations

import argparse
import signal

from .replies import DefaultResponder
from .server import FakeServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeserver")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=None, help="pieces in every reply")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of faulted requests")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault draws")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context size reported")
    args = parser.parse_args(argv)

    # Block the signals before any thread starts, so every thread inherits the mask and the
    # signal waits for sigwait below instead of interrupting a server thread.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = FakeServer(port=args.port)
    server.responder = DefaultResponder(chunks=args.chunks)
    server.chunk_delay = args.delay
    server.n_ctx = args.n_ctx
    if args.fault_rate:
        server.fault_rate(args.fault_rate, seed=args.seed)
    with server:
        print(f"READY {server.base_url}", flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
