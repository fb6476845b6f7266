# Small persistent values that must survive a power cut during their own update (boot epoch and drop
# counter, the applied server config). Two files, <dir>/<name>.a and <dir>/<name>.b, each holding one generation
# with a CRC; an update overwrites the copy not holding the newest value, so a torn write can only
# destroy the copy being replaced, never the current value. This does not depend on rename being
# atomic, which littlefs guarantees but FAT does not. Values are read at boot and written seldom, so
# the App loads this module for the occasion (App.load) and it is not in the heap in between.
import struct

from binascii import crc32

from micropython import const

_HEAD = const(8)  # ">2sIH": magic b"MS", generation, data length; the CRC-32 of both follows the data


def _file(dir, name, i):
    return "%s/%s.%s" % (dir, name, "ab"[i])


def _newest(dir, name):
    # (generation, copy index 0/1, data length) of the newest intact copy, or None. The copies are
    # checked in small reads: saving a 4 KB config does not need two more 4 KB buffers.
    best = None
    buf = bytearray(64)
    for i in (0, 1):
        try:
            f = open(_file(dir, name, i), "rb")
        except OSError:
            continue
        with f:
            head = f.read(_HEAD)
            if len(head) != _HEAD:
                continue
            magic, gen, n = struct.unpack(">2sIH", head)
            crc = crc32(head)
            left = n
            while left:
                k = f.readinto(memoryview(buf)[:min(left, 64)])
                if not k:
                    break
                crc = crc32(memoryview(buf)[:k], crc)
                left -= k
            tail = f.read(5)
        if magic == b"MS" and not left and len(tail) == 4 and int.from_bytes(tail, "big") == crc:
            if best is None or gen > best[0]:
                best = (gen, i, n)
    return best


def load(dir, name):
    """The newest intact value (bytes) of the slots `name` in dir, or None if neither copy is intact."""
    got = _newest(dir, name)
    if got is None:
        return None
    with open(_file(dir, name, got[1]), "rb") as f:
        f.seek(_HEAD)
        return f.read(got[2])


def save(dir, name, data):
    """Write data (any buffer) as the next generation of the slots `name` in dir, into the copy not
    holding the newest value."""
    cur = _newest(dir, name)
    gen, i = (cur[0] + 1, 1 - cur[1]) if cur else (1, 0)
    head = struct.pack(">2sIH", b"MS", gen, len(data))
    with open(_file(dir, name, i), "wb") as f:
        f.write(head)
        f.write(data)
        f.write(crc32(data, crc32(head)).to_bytes(4, "big"))
        f.flush()  # on littlefs this commits the file (lfs_file_sync)
