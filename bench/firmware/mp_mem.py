# MicroPython side of bench/firmware/mem_profile.py: heap taken by each firmware module, imported
# one at a time in dependency order with a collection before and after (what main.py does).
# After each import it prints the heap in use and micropython.qstr_info() (the interned names).
#   micropython -X heapsize=128k mp_mem.py <firmware dir> <module,module,...>
import gc
import os
import sys

import micropython

fw_dir, names = sys.argv[1], sys.argv[2].split(",")
os.chdir(fw_dir)  # module files in the working directory, as at a board's flash root: short paths
sys.path.insert(0, "")
gc.collect()
print(f"@ start {gc.mem_alloc()}")
micropython.qstr_info()
for name in names:
    __import__(name)
    gc.collect()
    print(f"@ {name} {gc.mem_alloc()}")
    micropython.qstr_info()
