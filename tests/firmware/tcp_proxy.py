"""A TCP forwarder that can cut the network the way a dead Wi-Fi uplink does: silently.

While cut, bytes in both directions are swallowed and new connections are accepted but never
forwarded, so neither side sees a close or a reset: the firmware must notice on its own (MQTT
keepalive, CONNACK timeout). restore() then resets every stalled connection and forwards again.
Loopback only; every thread stops with close().
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

from tests.utils.services import free_port


class CuttableProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._cut = False
        self._stop = False
        self._lock = threading.Lock()
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """From now on nothing gets through, and nobody is told."""
        with self._lock:
            self._cut = True

    def restore(self) -> None:
        """Reset the connections that lived through the cut (as a NAT that forgot them), forward again."""
        with self._lock:
            self._cut = False
            for s in list(self._peers):
                self._drop(s)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        with self._lock:
            for s in list(self._peers):
                self._drop(s)
        self._sel.close()
        self._listener.close()

    def _drop(self, s: socket.socket) -> None:
        other = self._peers.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(x)
            with contextlib.suppress(OSError):
                x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            x.close()
            self._peers.pop(x, None)

    def _run(self) -> None:
        while not self._stop:
            for key, _ev in self._sel.select(timeout=0.05):
                with self._lock:
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._pump(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self.accepted += 1
        if self._cut:  # the SYN got an answer from somewhere, and then nothing
            self._peers[client] = None
            self._sel.register(client, selectors.EVENT_READ, None)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        self._peers[client] = upstream
        self._peers[upstream] = client
        for s in (client, upstream):
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ, None)

    def _pump(self, s: socket.socket) -> None:
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(s)
            return
        other = self._peers.get(s)
        if self._cut or other is None:
            return  # swallowed
        try:
            other.sendall(data)
        except OSError:
            self._drop(s)
