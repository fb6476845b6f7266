# MicroPython side of bench/firmware/bench_firmware.py: per-press costs on the real unix port.
#   micropython -X heapsize=128k mp_bench.py <firmware dir> <work dir> <presses>
import gc
import os
import sys
import time

fw_dir, work_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, fw_dir)
os.chdir(work_dir)
import wire  # noqa: E402
from outbox import F_TS, TYP_RATING, Outbox  # noqa: E402
from signing import Signer  # noqa: E402

signer = Signer(bytes(range(32)))
DEV = "esp32-0a1b2c"
EP = 3
TS0 = 1795000000000


def per_op_us(fn):
    gc.collect()
    t0 = time.ticks_us()
    for i in range(1, n + 1):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t0) / n


def prefix(i):
    return wire.envelope(DEV, EP, i, 1000 * i, TS0 + i, "rating", wire.rating_body(1 + i % 4, 4))


sample = prefix(12345)
hmac_us = per_op_us(lambda i: signer.mac(sample))
encode_sign_us = per_op_us(lambda i: wire.seal(signer, prefix(i)))
ob = Outbox("bench-outbox")
ob.recover()
enqueue_us = per_op_us(lambda i: ob.append(TYP_RATING, 1 + i % 4, 4, F_TS, EP, i, 1000 * i, TS0 + i))
ob2 = Outbox("bench-outbox2")
ob2.recover()


def press(i):
    ob2.append(TYP_RATING, 1 + i % 4, 4, F_TS, EP, i, 1000 * i, TS0 + i)
    wire.seal(signer, prefix(i))


total_us = per_op_us(press)
print(f"payload_bytes {len(wire.seal(signer, sample))}")
print(f"hmac_us {hmac_us:.1f}")
print(f"encode_sign_us {encode_sign_us:.1f}")
print(f"enqueue_us {enqueue_us:.1f}")
print(f"sign_enqueue_us {total_us:.1f}")
print(f"ratio {total_us / hmac_us:.2f}")
