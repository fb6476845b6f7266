# What the box shows (issue 3: "the device shows the official's information", as at Hà Nội's
# counters): counter, serving official's name and post from the server's signed config (§5), a
# thank-you message after a press, and the link state. Imported only when a display is present.
#
# The SSD1306's built-in framebuf font is 8x8 ASCII, so Vietnamese is folded to its base letters
# ("Nguyễn Thị Lan" -> "Nguyen Thi Lan"): readable, and 1 KB instead of a Vietnamese font.

import time

COLS = 16  # 128 px / 8 px font
ROWS = 8  # 64 px / 8 px font
# An SSD1306 frame is ~25 ms of I2C: the outbox counter is redrawn at most this often.
_REFRESH_MS = 1000

# Base letter, then every Vietnamese letter that folds to it (lower case, then upper case).
_FOLD = (
    ("a", "àáảãạăằắẳẵặâầấẩẫậ"), ("A", "ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ"),
    ("e", "èéẻẽẹêềếểễệ"), ("E", "ÈÉẺẼẸÊỀẾỂỄỆ"),
    ("i", "ìíỉĩị"), ("I", "ÌÍỈĨỊ"),
    ("o", "òóỏõọôồốổỗộơờớởỡợ"), ("O", "ÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ"),
    ("u", "ùúủũụưừứửữự"), ("U", "ÙÚỦŨỤƯỪỨỬỮỰ"),
    ("y", "ỳýỷỹỵ"), ("Y", "ỲÝỶỸỴ"),
    ("d", "đ"), ("D", "Đ"),
)


def fold(text):
    """Text with Vietnamese letters reduced to ASCII; anything else non-ASCII becomes '?'."""
    out = []
    for ch in text:
        if ch < "\x80":
            out.append(ch)
            continue
        for base, variants in _FOLD:
            if ch in variants:
                out.append(base)
                break
        else:
            out.append("?")
    return "".join(out)


def wrap(text, width=COLS, rows=2):
    """Up to `rows` lines of at most `width` characters, broken at spaces where possible."""
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
    return lines[:rows]


def screen(cfg, online, waiting, thanks):
    """The 8 lines to show; cfg is the applied server config (a dict) or None."""
    rows = [""] * ROWS
    counter = cfg.get("counter") if cfg else None
    official = cfg.get("official") if cfg else None
    if counter:
        rows[0] = fold(str(counter.get("name") or counter.get("code") or ""))[:COLS]
    if thanks:
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
    """The display of the running box: App.step calls update() every pass; draw(rows) puts the
    screen() lines on the panel. Redrawn at once for the thank-you state and link changes, at most
    every _REFRESH_MS for the rest (the outbox counter), and only when a line changed."""

    def __init__(self, draw):
        self._draw = draw
        self.cfg = None  # counter and official of the applied server config (servercfg.py)
        self._rows = None
        self._at = 0  # tick of the last redraw
        self._thanks = self._online = None

    def update(self, app, now):
        th = app.buttons.in_thanks(now)
        online = app.mq.connected
        if th != self._thanks or online != self._online:
            self._thanks, self._online = th, online
            app.ui_dirty = True
        elif not app.ui_dirty or (not th and self._at and time.ticks_diff(now, self._at) < _REFRESH_MS):
            return
        app.ui_dirty = False
        self._at = now
        rows = screen(self.cfg, online, app.outbox.pending, th)
        if rows != self._rows:
            self._rows = rows
            self._draw(rows)


def oled(driver):
    """draw() for an ssd1306.SSD1306: the lines through its framebuf, then the frame to the panel."""
    def draw(rows):
        fb = driver.fb
        fb.fill(0)
        for i, line in enumerate(rows):
            fb.text(line, 0, i * 8, 1)
        driver.show()

    return draw
