# CRC-32 (IEEE 802.3, the zlib polynomial) for flash records. binascii.crc32 is in C on the ESP32 and
# unix ports; the bitwise fallback keeps builds without it working (slow, but records are ~34 bytes).
try:
    from binascii import crc32
except ImportError:
    crc32 = None

_POLY = 0xEDB88320  # reflected 0x04C11DB7


def crc32_py(data, crc=0):
    """Bitwise CRC-32, identical to binascii.crc32 (no table: 1 KB of RAM saved)."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


if crc32 is None:
    crc32 = crc32_py
