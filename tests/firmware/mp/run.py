# MicroPython side of tests/firmware/test_micropython_units.py: runs one test function of one
# tests/firmware/mp/mp_*.py module under the real unix port and prints PASS or the traceback.
#   micropython -X heapsize=128k run.py <firmware dir> <work dir> <module> <function>
import os
import sys

fw_dir, work_dir, module, func = sys.argv[1:5]
sys.path.insert(0, fw_dir)
os.chdir(work_dir)
mod = __import__(module)
getattr(mod, func)()
print("PASS")
