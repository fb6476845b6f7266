# Runs at power-on on the ESP32 (after boot.py). On the desk:
#   cd <state dir> && micropython -X heapsize=128k <repo>/device/micropython/main.py
# where the state dir plays the flash root: it holds config_local.py and the data/ directory.
import gc
import sys

if sys.platform != "esp32" and "" not in sys.path:
    sys.path.insert(0, "")  # the working directory is the desk's flash root (config_local.py)
gc.collect()
import app  # noqa: E402

gc.collect()
app.main()
