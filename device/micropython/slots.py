# Small persistent values that must survive a power cut during their own update (boot epoch, applied
# config). Two files, A and B, each holding one generation with a CRC; an update overwrites the
# older one, so a torn write can only destroy the copy being replaced, never the current value.
# This does not depend on rename being atomic, which littlefs guarantees but FAT does not.
import struct

from binascii import crc32

_MAGIC = b"MS"
_HEAD = ">2sIH"  # magic, generation, data length
_HEAD_LEN = 8


class Slots:
    """A value persisted as the newest valid of two CRC-checked copies."""

    def __init__(self, base):
        self._paths = (base + ".a", base + ".b")
        self.gen = 0
        self._cur = 1  # index of the copy holding `gen`; the first save writes copy A

    def _read(self, path):
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        if len(raw) < _HEAD_LEN + 4:
            return None
        magic, gen, n = struct.unpack(_HEAD, raw)
        if magic != _MAGIC or len(raw) != _HEAD_LEN + n + 4:
            return None
        if struct.unpack(">I", raw[-4:])[0] != crc32(raw[:-4]):
            return None
        return gen, raw[_HEAD_LEN:-4]

    def load(self):
        """The newest intact value (bytes), or None if neither copy is intact."""
        best = None
        for i in (0, 1):
            got = self._read(self._paths[i])
            if got and (best is None or got[0] > best[0]):
                best = got
                self._cur = i
        if best is None:
            return None
        self.gen = best[0]
        return best[1]

    def save(self, data):
        """Write data as the next generation into the copy not holding the current value."""
        gen = self.gen + 1
        i = 1 - self._cur
        raw = struct.pack(_HEAD, _MAGIC, gen, len(data)) + data
        with open(self._paths[i], "wb") as f:
            f.write(raw + struct.pack(">I", crc32(raw)))
            f.flush()  # on littlefs this commits the file (lfs_file_sync)
        self.gen = gen
        self._cur = i
