# MicroPython side of bench/firmware/bench_firmware.py: per-press costs on the real unix port.
#   micropython -X heapsize=128k mp_bench.py <firmware dir> <work dir> <presses>
import gc
import os
import sys
import time

fw_dir, work_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, fw_dir)
os.chdir(work_dir)
import recovery  # noqa: E402
import wire  # noqa: E402
from outbox import Outbox  # noqa: E402

key = wire.hmac_key(bytes(range(32)))
TYP_RATING, F_TS = 1, 2  # outbox record: a rating, with a valid ts
DEV = "esp32-0a1b2c"
EP = 3
TS0 = 1795000000000


def per_op_us(fn):
    gc.collect()
    t0 = time.ticks_us()
    for i in range(1, n + 1):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t0) / n


def event(i):
    return wire.encode(key, DEV, EP, i, 1000 * i, TS0 + i, "rating", wire.rating(1 + i % 4, 4, False))


sample = event(12345)[:-74]  # the signed part of an event
hmac_us = per_op_us(lambda i: wire.sign(key, sample))
encode_sign_us = per_op_us(event)
ob = Outbox("bench-outbox")
recovery.recover(ob)
enqueue_us = per_op_us(lambda i: ob.append(TYP_RATING, 1 + i % 4, 4, F_TS, EP, i, 1000 * i, TS0 + i))
ob2 = Outbox("bench-outbox2")
recovery.recover(ob2)


def press(i):
    ob2.append(TYP_RATING, 1 + i % 4, 4, F_TS, EP, i, 1000 * i, TS0 + i)
    event(i)


total_us = per_op_us(press)
print(f"payload_bytes {len(event(12345))}")
print(f"hmac_us {hmac_us:.1f}")
print(f"encode_sign_us {encode_sign_us:.1f}")
print(f"enqueue_us {enqueue_us:.1f}")
print(f"sign_enqueue_us {total_us:.1f}")
print(f"ratio {total_us / hmac_us:.2f}")
