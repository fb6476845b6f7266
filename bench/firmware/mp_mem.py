# MicroPython side of bench/firmware/mem_profile.py: heap taken by each firmware module, imported
# one at a time in dependency order with a collection before and after (what main.py does).
#   micropython -X heapsize=128k mp_mem.py <firmware dir> <names dir> <module,module,...> [fakes dir]
# <names dir>/<module>.txt lists the names in the module's .mpy (one a line): before the import, each
# is looked up (interned, as the import would do anyway) and qstr_info() printed, so the caller sees
# which ones were new. After each import: the heap in use and qstr_info(). With a
# fakes dir, its fake_machine and fake_network stand in for the ESP32's machine and network modules.
import gc
import os
import sys

import micropython

fw_dir, names_dir, modules = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
if len(sys.argv) > 4:
    sys.path.append(sys.argv[4])
    import fake_machine
    import fake_network

    sys.modules["machine"], sys.modules["network"] = fake_machine, fake_network
os.chdir(fw_dir)  # module files in the working directory, as at a board's flash root: short paths
sys.path.insert(0, "")
gc.collect()
print(f"@ - {gc.mem_alloc()}")
micropython.qstr_info()
for name in modules:
    with open(names_dir + "/" + name + ".txt") as f:
        for line in f:
            print("@name " + line[:-1])
            getattr(None, line[:-1], None)  # interns the name if the interpreter does not have it yet
            micropython.qstr_info()
    __import__(name)
    gc.collect()
    print(f"@ {name} {gc.mem_alloc()}")
    micropython.qstr_info()
