# The one place that knows which hardware runs the firmware: the ESP32 or the unix port on a desk.
# Both modules implement the same small Board interface (see board_host.py for the list).
import sys

if sys.platform == "esp32":
    from board_esp32 import Board  # noqa: F401
else:
    from board_host import Board  # noqa: F401
