# What the box shows (issue 3: "the device shows the official's information", as at Hà Nội's
# counters): counter, serving official's name and post from the server's signed config (§5), a
# thank-you message after a press, and the link state. Imported only when a display is present.
#
# The SSD1306's built-in framebuf font is 8x8 ASCII, so Vietnamese is folded to its base letters
# ("Nguyễn Thị Lan" -> "Nguyen Thi Lan"): readable, and 1 KB instead of a Vietnamese font.

COLS = 16  # 128 px / 8 px font
ROWS = 8  # 64 px / 8 px font

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


class Oled:
    """Draws screen() lines on an SSD1306 through framebuf; redraws only when they change."""

    def __init__(self, driver):
        self._d = driver
        self._last = None

    def show(self, rows):
        if rows == self._last:
            return
        self._last = rows
        fb = self._d.fb
        fb.fill(0)
        for i, line in enumerate(rows):
            fb.text(line, 0, i * 8, 1)
        self._d.show()


class TextDisplay:
    """The SSD1306 of the desk: the screen's lines as JSON, when they change."""

    def __init__(self, board):
        self._board = board
        self._last = None

    def show(self, rows):
        if rows != self._last:
            self._last = rows
            self._board.emit("display", lines=rows)
