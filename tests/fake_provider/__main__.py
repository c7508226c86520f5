"""``python -m tests.fake_provider --port 8765``: serve the fake until killed,
printing its URL once it listens (port 0 picks a free one)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .server import FakeProvider


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake SendGrid and Twilio APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep", type=int, default=1000, help="calls kept whole (default 1000)")
    args = parser.parse_args()
    fake = FakeProvider(host=args.host, port=args.port, keep=args.keep)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(fake.serve(lambda: print(fake.url, flush=True)))


if __name__ == "__main__":
    main()
