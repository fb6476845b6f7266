# What the box shows (issue 3: "the device shows the official's information", as at Hà Nội's
# counters): counter, serving official's name and post from the server's signed config (§5), a
# thank-you message after a press, and the link state. Imported only when a display is present.
#
# The SSD1306's built-in framebuf font is 8x8 ASCII, so Vietnamese is folded to its base letters
# ("Nguyễn Thị Lan" -> "Nguyen Thi Lan"): readable, and 1 KB instead of a Vietnamese font.

import time

from micropython import const

_COLS = const(16)  # 128 px / 8 px font
_ROWS = const(8)  # 64 px / 8 px font
# An SSD1306 frame is ~25 ms of I2C: the outbox counter is redrawn at most this often.
_REFRESH_MS = const(1000)

# Groups of a base letter and every Vietnamese letter that folds to it, as UTF-8 in one buffer (one
# object instead of dozens). fold() reads bytes, because MicroPython interns every character it takes
# out of a str (a name kept for good, docs/firmware.md §6): the official's name must not add its
# letters to the heap.
_FOLD = ("|aàáảãạăằắẳẵặâầấẩẫậ|AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ|eèéẻẽẹêềếểễệ|EÈÉẺẼẸÊỀẾỂỄỆ|iìíỉĩị|IÌÍỈĨỊ"
         "|oòóỏõọôồốổỗộơờớởỡợ|OÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ|uùúủũụưừứửữự|UÙÚỦŨỤƯỪỨỬỮỰ|yỳýỷỹỵ|YỲÝỶỸỴ|dđ|DĐ").encode()


def fold(text):
    """Text with Vietnamese letters reduced to ASCII; anything else non-ASCII becomes '?'."""
    b = text.encode()
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i]
        n = 1 if c < 0x80 else 2 if c < 0xE0 else 3 if c < 0xF0 else 4  # UTF-8 sequence length
        # A whole UTF-8 sequence can only match a whole letter: lead and continuation bytes differ.
        k = -1 if n == 1 else _FOLD.find(b[i:i + n])
        out.append(c if n == 1 else 0x3F if k < 0 else _FOLD[_FOLD.rfind(b"|", 0, k) + 1])  # 0x3F: "?"
        i += n
    return out.decode()


def wrap(text):
    """Up to 2 lines of at most 16 characters (the panel's width), broken at spaces where possible."""
    width = _COLS
    lines = []
    words = fold(text).split()
    cur = ""
    for w in words:
        while len(w) > width:  # a word longer than a line is cut
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(w[:width])
            w = w[width:]
        if not cur:
            cur = w
        elif len(cur) + 1 + len(w) <= width:
            cur += " " + w
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines[:2]


def screen(cfg, online, waiting, flag):
    """The 8 lines to show: cfg the applied server config (a dict) or None, online the link, waiting
    the events in the outbox, flag the thank-you state."""
    rows = [""] * _ROWS
    counter = cfg.get("counter") if cfg else None
    official = cfg.get("official") if cfg else None
    if counter:
        rows[0] = fold(str(counter.get("name") or counter.get("code") or ""))[:_COLS]
    if flag:
        rows[3] = "  Xin cam on!"
        rows[4] = "   Thank you"
    elif official:
        name = wrap(str(official.get("name") or ""))
        post = wrap(str(official.get("post") or ""))
        for i, line in enumerate(name):
            rows[2 + i] = line
        for i, line in enumerate(post):
            rows[5 - (1 if len(name) < 2 else 0) + i] = line
    elif cfg:
        rows[3] = "Chua co can bo"  # "no official signed in"
    else:
        rows[3] = "Dang cho cau"  # "waiting for configuration"
        rows[4] = "hinh may chu"
    rows[7] = ("online" if online else "offline") + ("  q:%d" % waiting if waiting else "")
    return rows


class Screen:
    """The display of the running box: App.step calls update() every pass; draw(lines) puts the
    screen() lines on the panel. Redrawn at once for the thank-you state and link changes, at most
    every _REFRESH_MS for the rest (the outbox counter), and only when a line changed."""

    def __init__(self, draw):
        self.draw = draw
        self.cfg = None  # counter and official of the applied server config (servercfg.py)
        self.lines = None
        self.ticks = 0  # of the last redraw
        self.state = None  # (thank-you state, online) when last drawn

    def update(self, app, now):
        th = app.buttons.in_thanks(now)
        online = app.mq.connected
        if (th, online) != self.state:
            self.state = (th, online)
            app.ui_dirty = True
        elif not app.ui_dirty or (not th and self.ticks and time.ticks_diff(now, self.ticks) < _REFRESH_MS):
            return
        app.ui_dirty = False
        self.ticks = now
        lines = screen(self.cfg, online, app.outbox.pending, th)
        if lines != self.lines:
            self.lines = lines
            self.draw(lines)


def oled(dev):
    """draw() for an ssd1306.SSD1306 dev: the lines through its framebuf, then the frame to the panel."""
    def draw(lines):
        fb = dev.fb
        fb.fill(0)
        for i, line in enumerate(lines):
            fb.text(line, 0, i * 8, 1)
        dev.show()

    return draw
