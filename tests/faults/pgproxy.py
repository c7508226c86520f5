"""A TCP proxy in front of PostgreSQL, so a fault case can "restart the
database" as one worker sees it without touching the server others use.

    with PgProxy("127.0.0.1", 5432) as proxy:    # the worker's DATABASE_URL -> proxy.port
        ...
        proxy.restart(terminate=kill_backends, down=3.0)

``restart`` does what a fast shutdown and start of the server does to its
clients: new connections are refused (the port is closed), the server-side
sessions of the proxied connections are terminated (the backends send
``57P01 terminating connection due to administrator command``), whatever is
left of the proxied connections is cut, and after ``down`` seconds the port
accepts again. Each proxied connection is two threads (one per direction),
plenty for a worker's handful of connections.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable

# Below Linux's ephemeral range (32768-60999): no outgoing connection of
# another process takes the port while the proxy has it closed.
_PORTS = (20000, 32000)


class PgProxy:
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.accepted = 0  # connections taken in, over the proxy's life
        self.refused_at: float | None = None
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None

    # --- life -------------------------------------------------------------------

    def start(self) -> PgProxy:
        for _ in range(50):
            port = random.randint(*_PORTS)
            try:
                self._listen(port)
            except OSError:
                continue
            self.port = port
            break
        else:
            raise RuntimeError("no free port for the PostgreSQL proxy")
        self._acceptor = threading.Thread(target=self._accept_loop, name="pgproxy", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._close_listener()
        self.drop_all()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)

    def __enter__(self) -> PgProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults -----------------------------------------------------------------

    def refuse(self) -> None:
        """Close the port: connecting gets ECONNREFUSED, as with the server down."""
        self.refused_at = time.monotonic()
        self._close_listener()

    def accept_again(self) -> None:
        """Open the port again (the same one)."""
        deadline = time.monotonic() + 5
        while True:
            try:
                self._listen(self.port)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def drop_all(self) -> int:
        """Cut every proxied connection (both sides); returns how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _cut(*pair)
        return len(pairs)

    def upstream_ports(self) -> list[int]:
        """The local ports of the proxy's connections to the server: the
        ``client_port`` of their sessions in ``pg_stat_activity``."""
        ports = []
        with self._lock:
            for _, upstream in self._pairs:
                with contextlib.suppress(OSError):
                    ports.append(upstream.getsockname()[1])
        return ports

    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def restart(self, *, terminate: Callable[[list[int]], object], down: float = 3.0) -> object:
        """Refuse, terminate the proxied sessions (``terminate(client_ports)``,
        e.g. with ``pg_terminate_backend``), cut what is left, stay down for
        ``down`` seconds, accept again. Returns what ``terminate`` returned."""
        self.refuse()
        killed = terminate(self.upstream_ports())
        # The backends' FATAL reaches the clients through the proxy; then cut.
        time.sleep(0.1)
        self.drop_all()
        time.sleep(max(0.0, down - (time.monotonic() - self.refused_at)))
        self.accept_again()
        return killed

    # --- plumbing ---------------------------------------------------------------

    def _listen(self, port: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        listener.settimeout(0.1)
        with self._lock:
            self._listener = listener

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pipe, args=(src, dst, (client, upstream)), daemon=True
                ).start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        _cut(*pair)


def _cut(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()
