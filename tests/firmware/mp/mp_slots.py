# slots.py: a small value that survives a power cut in the middle of its own update.
import os

import slots


def _clean():
    for n in ("s.a", "s.b"):
        if n in os.listdir():
            os.remove(n)


def test_newest_generation_wins_and_updates_alternate():
    _clean()
    assert slots.load(".", "s") is None
    for v in (b"one", b"two", b"three"):
        slots.save(".", "s", v)
    assert slots.load(".", "s") == b"three"
    with open("s.a", "rb") as f:
        a = f.read()
    with open("s.b", "rb") as f:
        b = f.read()
    assert (b"three" in a) != (b"three" in b)  # the two copies hold the last two values
    assert (b"two" in a) != (b"two" in b)
    slots.save(".", "s", memoryview(bytearray(b"from a buffer")))  # e.g. a config in the receive buffer
    assert slots.load(".", "s") == b"from a buffer"


def test_a_torn_or_damaged_update_leaves_the_previous_value():
    _clean()
    slots.save(".", "s", b"\x00\x00\x00\x07epoch7")
    slots.save(".", "s", b"\x00\x00\x00\x08epoch8")  # written to copy B
    with open("s.b", "rb") as f:
        full = f.read()
    for cut in range(len(full)):
        with open("s.b", "wb") as f:
            f.write(full[:cut])
        assert slots.load(".", "s") == b"\x00\x00\x00\x07epoch7", cut
    for at in range(len(full)):
        bad = bytearray(full)
        bad[at] ^= 0x10
        with open("s.b", "wb") as f:
            f.write(bad)
        assert slots.load(".", "s") == b"\x00\x00\x00\x07epoch7", at
    # and the next save goes over the damaged copy, not over the good one
    slots.save(".", "s", b"nine")
    assert slots.load(".", "s") == b"nine"
    with open("s.a", "rb") as f:
        assert b"epoch7" in f.read()
