"""A TCP forwarder in front of PostgreSQL or Redis that can cut the connection, as an outage does.

`cut()` closes every open connection and refuses new ones (accepted, then closed at once: what
a client sees while the server restarts); `restore()` forwards again.

`client_turns` counts the times a client spoke after the server had answered it (its first
bytes on a connection included): a client that waits for each reply takes one turn per
command, a pipelining client about one per pipeline.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from boxoffice_devstack.servers import free_port


class TcpProxy:
    """Listens on 127.0.0.1:`port`; forwards to `upstream`, a (host, port) or a Unix socket."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stopped = False
        self.client_turns = 0
        # Whether the last bytes on each client's connection came from the server.
        self._answered: dict[socket.socket, bool] = {}
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                server = self._connect()
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
                self._answered[client] = True
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst, client), daemon=True).start()

    def _connect(self) -> socket.socket:
        if isinstance(self.upstream, str):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.upstream)
            return server
        return socket.create_connection(self.upstream, timeout=5)

    def _pipe(self, src: socket.socket, dst: socket.socket, client: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if src is not client:
                        self._answered[client] = True
                    elif self._answered.get(client):
                        self._answered[client] = False
                        self.client_turns += 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _close(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
                self._answered.pop(sock, None)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            open_sockets = list(self._sockets)
        self._close(*open_sockets)

    def restore(self) -> None:
        self._cut = False

    def stop(self) -> None:
        self._stopped = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)
