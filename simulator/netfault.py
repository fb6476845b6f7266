"""A device host's network: one TCP forwarder per device that has network drops, cut the way a dead
Wi-Fi uplink is cut — silently.

While a device's link is cut, bytes in both directions are swallowed (its QoS 1 publishes are lost on
the way) and new connections go nowhere; nobody is told. restore() resets the connections that lived
through the cut, as a NAT that forgot them, so the device reconnects and re-sends what was never
acknowledged (protocol §7). One selector thread serves every device of the host. Loopback only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

CHUNK = 65536


class FaultyNetwork:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._sel = selectors.DefaultSelector()
        self._ports: dict[str, int] = {}
        self._listeners: dict[socket.socket, str] = {}
        self._peers: dict[socket.socket, tuple[socket.socket | None, str]] = {}
        self._cut: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faulty-network", daemon=True)

    def add(self, device_id: str) -> int:
        """A listening port that forwards to the broker for `device_id`; returns the port."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        with self._lock:
            self._listeners[listener] = device_id
            self._sel.register(listener, selectors.EVENT_READ, None)
        self._ports[device_id] = listener.getsockname()[1]
        return self._ports[device_id]

    def start(self) -> FaultyNetwork:
        self._thread.start()
        return self

    def cut(self, device_id: str) -> None:
        with self._lock:
            self._cut.add(device_id)

    def restore(self, device_id: str) -> None:
        with self._lock:
            self._cut.discard(device_id)
            for s, (_other, dev) in list(self._peers.items()):
                if dev == device_id:
                    self._drop(s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for s in [*self._peers, *self._listeners]:
                with contextlib.suppress(OSError):
                    s.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.2):
                with self._lock:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock in self._listeners:
                        self._accept(sock)
                    elif sock in self._peers:
                        self._pump(sock)

    def _accept(self, listener: socket.socket) -> None:
        dev = self._listeners[listener]
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = None
        if dev not in self._cut:
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()  # the broker is down: the device sees a refused connection, as it would
                return
            upstream.settimeout(2.0)  # readable before recv (selector); sendall may wait briefly
            self._peers[upstream] = (client, dev)
            self._sel.register(upstream, selectors.EVENT_READ, None)
        client.settimeout(2.0)
        self._peers[client] = (upstream, dev)
        self._sel.register(client, selectors.EVENT_READ, None)

    def _pump(self, sock: socket.socket) -> None:
        other, dev = self._peers[sock]
        try:
            data = sock.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        if dev in self._cut or other is None:
            return  # swallowed: the uplink is dead
        try:
            other.sendall(data)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        other, _ = self._peers.pop(sock, (None, ""))
        for s in (sock, other):
            if s is None:
                continue
            self._peers.pop(s, None)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(s)
            with contextlib.suppress(OSError):
                s.close()
