# display.py and ssd1306.py: what the box shows, drawn through the real framebuf module.
import display
import ssd1306

CFG = {"counter": {"code": "PX-01", "name": "Quầy 1 - Tư pháp"},
       "official": {"code": "CB-0042", "name": "Nguyễn Thị Lan", "post": "Công chức Tư pháp - Hộ tịch"}}


def test_vietnamese_is_folded_for_the_ascii_font():
    assert display.fold("Nguyễn Thị Lan") == "Nguyen Thi Lan"
    assert display.fold("ĐỖ ƯỚC Ở ĐÂY") == "DO UOC O DAY"
    assert display.fold("Quầy 1 — 日") == "Quay 1 ? ?"


def test_screen_shows_counter_official_and_link_state():
    rows = display.screen(CFG, True, 0, False)
    assert len(rows) == 8 and all(len(r) <= 16 for r in rows)
    assert rows[0] == "Quay 1 - Tu phap"
    assert "Nguyen Thi Lan" in rows and "Cong chuc Tu" in rows and "phap - Ho tich" in rows
    assert rows[7] == "online"
    assert display.screen(CFG, False, 12, False)[7] == "offline  q:12"
    assert "Xin cam on!" in display.screen(CFG, True, 0, True)[3]
    nobody = {"counter": CFG["counter"], "official": None}
    assert display.screen(nobody, True, 0, False)[3] == "Chua co can bo"
    assert display.screen(None, False, 0, False)[3] == "Dang cho cau"


def test_long_words_and_names_are_wrapped_and_cut():
    assert display.wrap("Nguyễn Thị Phương Thảo Hoàng") == ["Nguyen Thi", "Phuong Thao"]
    assert display.wrap("x" * 40) == ["x" * 16, "x" * 16]


class FakeI2C:
    """The I2C bus of the desk: records what the SSD1306 would receive (no chip here)."""

    def __init__(self):
        self.writes = []

    def writeto(self, addr, buf):
        self.writes.append((addr, bytes(buf)))


def test_ssd1306_init_and_frame_go_out_on_the_bus():
    bus = FakeI2C()
    d = ssd1306.SSD1306(bus, 0x3C)
    init = [w[1][1] for w in bus.writes]
    assert all(w[0] == 0x3C and w[1][0] == 0x80 for w in bus.writes)
    assert init[0] == 0xAE and init[-1] == 0xAF and 0x8D in init  # off ... charge pump ... on
    draw = display.oled(d)
    bus.writes.clear()
    draw(display.screen(CFG, True, 0, False))
    frame = bus.writes[-1][1]
    assert frame[0] == 0x40 and len(frame) == 1 + 128 * 8
    assert any(frame[1 + 2 * 128:1 + 3 * 128])  # row 2 (the name) has pixels
    assert not any(frame[1 + 1 * 128:1 + 2 * 128])  # row 1 is empty


class _App:
    """What display.Screen reads of the App."""

    def __init__(self):
        import buttons

        self.buttons = buttons.Buttons(4, False, lambda i, f: None, thanks_ms=3000)
        self.mq = type("Mq", (), {"connected": True})()
        self.outbox = type("Ob", (), {"pending": 0})()
        self.ui_dirty = True


def test_screen_redraws_when_something_changed_and_not_more_often():
    app, drawn = _App(), []
    scr = display.Screen(drawn.append)
    scr.cfg = CFG
    scr.update(app, 10000)
    assert len(drawn) == 1 and drawn[0][7] == "online" and not app.ui_dirty
    scr.update(app, 10010)
    assert len(drawn) == 1  # nothing changed
    app.outbox.pending, app.ui_dirty = 3, True
    scr.update(app, 10500)
    assert len(drawn) == 1  # the counter waits for the refresh time
    scr.update(app, 11001)
    assert drawn[-1][7] == "online  q:3"
    app.buttons.accept(0, 11100)  # a press: the thank-you screen at once
    scr.update(app, 11100)
    assert "Xin cam on!" in drawn[-1][3]
    app.mq.connected = False  # the link state at once too
    scr.update(app, 11110)
    assert drawn[-1][7] == "offline  q:3"
    scr.update(app, 14200)  # the thank-you state is over
    assert drawn[-1][3] != "  Xin cam on!" and "Nguyen Thi Lan" in drawn[-1]
