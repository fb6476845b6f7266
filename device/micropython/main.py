# Runs at power-on on the ESP32 (after boot.py), from source: keep it small. On the desk, from a
# directory holding the built firmware (device/micropython/tools/build_mpy.py), config_local.py and
# data/, as a board's flash root does:  micropython -X heapsize=128k main.py
import gc
import sys

if sys.platform != "esp32" and "" not in sys.path:
    sys.path.insert(0, "")  # the working directory is the desk's flash root
gc.collect()
import start  # noqa: E402

app = start.boot()
del sys.modules["start"]  # start-up code: not needed any more
del start
app.run()
