# Minimal SSD1306 128x64 driver over I2C (Solomon Systech SSD1306 datasheet rev 1.1, §9-10), drawn
# through a MicroPython framebuf. Only what the box needs: init, full-frame show, power off.
import framebuf
from micropython import const

_CTRL_CMD = const(0x80)  # control byte: one command follows (datasheet §8.1.5.2)
_CTRL_DATA = const(0x40)  # control byte: display RAM data follows
_WIDTH = const(128)
_PAGES = const(8)  # 64 rows of 8 pixels

# Datasheet §10 command table, in the order of the application note's power-on sequence.
_INIT = (
    0xAE,  # display off while configuring
    0x20, 0x00,  # memory addressing: horizontal, so one write fills the frame
    0x40,  # display start line 0
    0xA1,  # segment remap: column 127 is SEG0 (module mounted the usual way up)
    0xA8, 63,  # multiplex ratio = height - 1
    0xC8,  # COM scan direction: remapped
    0xD3, 0x00,  # display offset 0
    0xDA, 0x12,  # COM pins: alternative configuration (64-row panels)
    0xD5, 0x80,  # oscillator frequency / clock divide: reset value
    0xD9, 0xF1,  # pre-charge period for the internal charge pump
    0xDB, 0x30,  # VCOMH deselect level
    0x81, 0xCF,  # contrast
    0xA4,  # show RAM content
    0xA6,  # normal (not inverted)
    0x8D, 0x14,  # charge pump on (3.3 V modules have no external VCC)
    0xAF,  # display on
)


class SSD1306:
    """A 128x64 panel at I2C address addr. fb: a framebuf.FrameBuffer (MONO_VLSB) to draw on;
    show() sends it whole."""

    def __init__(self, i2c, addr=0x3C):
        self.i2c = i2c
        self.addr = addr
        # One buffer holds the data control byte and the frame, so show() is a single I2C write.
        self.buf = bytearray(1 + _WIDTH * _PAGES)
        self.buf[0] = _CTRL_DATA
        self.fb = framebuf.FrameBuffer(memoryview(self.buf)[1:], _WIDTH, _PAGES * 8, framebuf.MONO_VLSB)
        self._cmd_buf = bytearray(2)
        self._cmd_buf[0] = _CTRL_CMD
        for n in _INIT:
            self.cmd(n)

    def cmd(self, n):
        """Send command byte n."""
        self._cmd_buf[1] = n
        self.i2c.writeto(self.addr, self._cmd_buf)

    def show(self):
        for n in (0x21, 0, _WIDTH - 1, 0x22, 0, _PAGES - 1):  # column and page windows
            self.cmd(n)
        self.i2c.writeto(self.addr, self.buf)

    def off(self):
        self.cmd(0xAE)
