# MicroPython side of bench/firmware/bench_ports.py: the firmware's core (App, outbox, buttons,
# wire, the MQTT client's buffers; no network) on any port, to compare a 64-bit and a 32-bit heap.
#   micropython -X heapsize=128k mp_core.py <params.json>      (the unix port)
#   node wasm_run.mjs ... (the webassembly port reads /work/params.json)
# params: firmware dir, work dir, presses, and the files bench_ports.py made: the staffed config
# (signed, as the server sends it) and one signed ack per press, each after its 2-byte length.
# Boots like start.py (outbox recovery, epoch slots, App, the config applied through App.on_message),
# then per press: the press as the debounce timer accepts it, App.step() (the flash append, the LED,
# the memory accounting; no Wi-Fi, so no connection is tried), the event encoded and signed as it
# would be sent, and its ack read into the MQTT receive buffer and handled by App.on_message.
#
# The webassembly port frees only the garbage of calls that have returned (it cannot scan the stack
# of the call that runs), so there wasm_run.mjs calls boot(), start(), press(i) and report() one by
# one from JavaScript; the unix port runs them in the loop at the end.
import gc
import json
import os
import sys
import time

with open(sys.argv[1] if len(sys.argv) > 1 else "/work/params.json") as _f:
    P = json.load(_f)
sys.path.insert(0, P["fw"])
os.chdir(P["work"])
# The interpreter's own modules the firmware uses (C modules on an ESP32; the webassembly port has a
# frozen Python binascii on top of its C one): loaded before anything is measured.
import binascii  # noqa: E402
import hashlib  # noqa: E402,F401
import select  # noqa: E402,F401
import struct  # noqa: E402

import micropython  # noqa: E402

MARK = {}  # heap in use at the steps of the run


def alloc():
    gc.collect()
    return gc.mem_alloc()


def mark(name):
    MARK[name] = alloc()


def firmware():
    """The resident modules, in boot order."""
    global wire, outbox, buttons, app
    import wire  # noqa: I001 (boot order, not sorted)
    import outbox
    import buttons
    import mqtt  # noqa: F401
    import app


class Board:
    """The board's interface with nothing behind it: no pins, no radio (so no connection attempt)."""

    app = None
    wdt_max_gap = 0

    def emit(self, event, **fields):
        pass

    def feedback(self, i, flag):
        pass

    def poll(self, now):
        pass

    def thanks_over(self):
        pass

    def wdt_feed(self):
        pass

    def wifi_up(self):
        return False

    def rssi(self):
        return None


box = acks = None
head = bytearray(2)
t_sign = [0, 0]  # total us in encode + sign, ms of the whole run


def boot():
    """start.py's work: the outbox recovered, the epoch on flash, the App, the config applied."""
    global box, acks
    os.mkdir("data")
    cfg = {"device_id": "esp32-bench1", "data_dir": "data", "keepalive_s": 60, "hb_s": 60,
           "backoff_min_ms": 1000, "wifi_retry_ms": 10 ** 8, "resend_ms": 15000, "resend_max_ms": 120000,
           "window": 32}
    board = Board()
    ob = outbox.Outbox("data/outbox")
    ob._rare("recover")
    bt = buttons.Buttons(5, True, board.feedback, 30, 4, 0)
    box = app.App(cfg, board, wire.hmac_key(binascii.unhexlify(P["secret_hex"])), ob, bt)
    box.wifi_next = time.ticks_add(time.ticks_ms(), 10 ** 8)  # never: no Wi-Fi here
    box.ep = 1
    box.load("slots", "save", "data", "state", struct.pack(">II", 1, 0))
    with open(P["config"], "rb") as f:
        n = f.readinto(box.mq.buf)
    box.on_message(memoryview(b"cfg"), memoryview(box.mq.buf)[:n])
    assert box.cfg_rev == 1, "config not applied"
    acks = open(P["acks"], "rb")  # noqa: SIM115 (read press by press, open until the process ends)


def start():
    """As App.run() begins: the heap in use after start-up, the collection threshold."""
    base = alloc()
    gc.threshold(2 * 1024)
    box.mem[0] = box.mem[1] = box.mem[2] = base
    box.mem[3] = base + 2 * 1024
    t_sign[1] = time.ticks_ms()


def press(i):
    """One press: accepted, stored (App.step), encoded and signed, acked."""
    now = time.ticks_ms()
    box.buttons.accept(i % 4, now)
    box.step()
    rec = box.outbox.next_unsent()
    t = time.ticks_us()
    box.encode(rec)
    t_sign[0] += time.ticks_diff(time.ticks_us(), t)
    acks.readinto(head)
    k = (head[0] << 8) | head[1]
    acks.readinto(memoryview(box.mq.buf)[:k])
    box.on_message(memoryview(b"ack"), memoryview(box.mq.buf)[:k])
    box.peak()


def live():
    """The heap in use after a collection (on the webassembly port: of what earlier calls left)."""
    a = alloc()
    if a > box.mem[2]:
        box.mem[2] = a


def report():
    n = P["presses"]
    assert box.seq == n and box.outbox.pending == 0 and box.stats[2] == n, (box.seq, box.outbox.pending)
    live()
    print("@ " + json.dumps({"start": MARK["first"], "code": MARK["code"] - MARK["first"], "base": box.mem[0],
                             "peak": box.mem[1], "live": box.mem[2], "presses": n,
                             "ms": time.ticks_diff(time.ticks_ms(), t_sign[1]),
                             "encode_sign_us": t_sign[0] / n, "word": 4 if sys.maxsize < 2 ** 32 else 8}))
    micropython.qstr_info()


if sys.platform != "webassembly":
    mark("first")
    firmware()
    mark("code")
    boot()
    start()
    for i in range(P["presses"]):
        press(i)
    report()
