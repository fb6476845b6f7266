# Small persistent values that must survive a power cut during their own update (boot epoch and drop
# counter, the applied server config). Two files, <base>.a and <base>.b, each holding one generation
# with a CRC; an update overwrites the copy not holding the newest value, so a torn write can only
# destroy the copy being replaced, never the current value. This does not depend on rename being
# atomic, which littlefs guarantees but FAT does not. Values are read at boot and written seldom, so
# the App loads this module for the occasion (App.load) and it is not in the heap in between.
import struct

from binascii import crc32

from micropython import const

_HEAD = const(8)  # ">2sIH": magic b"MS", generation, data length; the CRC-32 of both follows the data


def _newest(path):
    # (generation, copy index 0/1, data) of the newest intact copy, or None.
    best = None
    for i in (0, 1):
        try:
            with open(path + (".a", ".b")[i], "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if len(raw) < _HEAD + 4:
            continue
        magic, gen, n = struct.unpack_from(">2sIH", raw)
        if magic != b"MS" or len(raw) != _HEAD + n + 4 or int.from_bytes(raw[-4:], "big") != crc32(raw[:-4]):
            continue
        if best is None or gen > best[0]:
            best = (gen, i, raw[_HEAD:-4])
    return best


def load(path):
    """The newest intact value (bytes) of path.a / path.b, or None if neither copy is intact."""
    got = _newest(path)
    return got and got[2]


def save(path, data):
    """Write data (any buffer) as the next generation into the copy not holding the newest value."""
    cur = _newest(path)
    gen, i = (cur[0] + 1, 1 - cur[1]) if cur else (1, 0)
    head = struct.pack(">2sIH", b"MS", gen, len(data))
    with open(path + (".a", ".b")[i], "wb") as f:
        f.write(head)
        f.write(data)
        f.write(crc32(data, crc32(head)).to_bytes(4, "big"))
        f.flush()  # on littlefs this commits the file (lfs_file_sync)
