# MicroPython side of bench/firmware/mem_profile.py: heap taken by each firmware module, imported
# one at a time in dependency order with a collection before and after (what main.py does).
#   micropython -X heapsize=128k mp_mem.py <firmware dir> <module,module,...>
import gc
import sys

fw_dir, names = sys.argv[1], sys.argv[2].split(",")
sys.path.insert(0, fw_dir)
gc.collect()
start = prev = gc.mem_alloc()
print(f"start {start}")
for name in names:
    __import__(name)
    gc.collect()
    a = gc.mem_alloc()
    print(f"{name} {a - prev}")
    prev = a
print(f"total {prev - start}")
