# Debounce and the thank-you state (buttons.py) driven with explicit ticks, as the board's pin
# interrupt and one-shot timer drive them.
from buttons import Buttons

PRESSED = bytearray(6)
RING = 32  # buttons.py's ring of accepted presses


def _box(**kw):
    fb = []
    b = Buttons(5, True, lambda i, flag: fb.append((i, flag)), debounce_ms=30, levels=4, **kw)
    return b, fb


def _level(i, v, b, t):
    PRESSED[i] = v
    b.edge(i, t)


def _settle(b, t):
    return b.settle(t, lambda i: PRESSED[i] == 1)


def test_bouncing_contact_gives_one_press_after_it_is_quiet():
    b, fb = _box(thanks_ms=0)
    for k, t in enumerate((0, 2, 3, 5, 8)):  # chatter: down, up, down, up, down
        _level(0, 1 - k % 2, b, 1000 + t)
    assert _settle(b, 1030) == 8  # last edge at 1008: not quiet yet, check again in 8 ms
    assert fb == []
    assert _settle(b, 1038) == -1
    assert fb == [(0, 0)] and b.take()[:2] == (0, 1038) and b.take() is None
    _level(0, 0, b, 1100)  # release, with its own bounce
    _level(0, 1, b, 1101)
    _level(0, 0, b, 1103)
    _settle(b, 1133)
    assert fb == [(0, 0)]  # a release is not a press
    _level(0, 1, b, 1200)
    _settle(b, 1230)
    assert fb == [(0, 0), (0, 0)]


def test_holding_a_button_is_one_press():
    b, fb = _box(thanks_ms=0)
    _level(2, 1, b, 0)
    _settle(b, 30)
    _level(2, 1, b, 500)  # an edge seen while held (a glitch) does not press again
    _settle(b, 530)
    assert fb == [(2, 0)]


def test_presses_in_the_thank_you_state_are_flagged_not_lost():
    b, fb = _box(thanks_ms=3000)
    for t in (0, 1000, 3500, 7000):
        _level(1, 1, b, t)
        _settle(b, t + 30)
        _level(1, 0, b, t + 100)
        _settle(b, t + 130)
    # 1000 is within 3 s of 0; 3500 within 3 s of 1000 (mashing extends the state); 7000 is not
    assert [f for _i, f in fb] == [0, 1, 1, 0]
    assert [b.take()[2] for _ in range(4)] == [0, 1, 1, 0]
    assert b.in_thanks(7030 + 2999) and not b.in_thanks(7030 + 3000)


def test_complaint_button_is_never_flagged_and_buttons_off_the_scale_are_ignored():
    b, fb = _box(thanks_ms=3000)
    _level(0, 1, b, 0)
    _level(5, 1, b, 1)  # complaint (index 5: after the 5 rating buttons)
    _level(4, 1, b, 2)  # the 5th button, while the scale has 4 levels
    _settle(b, 40)
    assert sorted(fb) == [(0, 0), (5, 0)] and b.ignored == 1
    assert b.complaint == 5


def test_a_full_ring_counts_what_it_could_not_keep():
    b, fb = _box(thanks_ms=0)
    for k in range(RING + 4):
        b.accept(k % 4, k)
    assert b.overflow == 5 and len(fb) == RING + 4  # feedback still given for each
    n = 0
    while b.take() is not None:
        n += 1
    assert n == RING - 1


def test_ticks_wrap_around_does_not_break_debounce():
    import time

    b, fb = _box(thanks_ms=0)
    t0 = time.ticks_add(0, -10)  # 10 ms before the tick counter wraps
    _level(3, 1, b, t0)
    assert _settle(b, time.ticks_add(t0, 29)) == 1
    _settle(b, time.ticks_add(t0, 30))
    assert fb == [(3, 0)]
