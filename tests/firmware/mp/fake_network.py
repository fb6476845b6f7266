# Stand-in for the ESP32's `network` module: a station interface whose association the test controls.
STA_IF = 0


class WLAN:
    last = None

    def __init__(self, which):
        self._active = False
        self.connected = False
        self.connects = []
        WLAN.last = self

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = on

    def isconnected(self):
        return self.connected

    def connect(self, ssid, password):
        self.connects.append((ssid, password))

    def disconnect(self):
        self.connected = False

    def status(self, what=None):
        if what == "rssi":
            return -61
        return 1010
