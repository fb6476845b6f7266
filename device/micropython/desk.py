# The desk board's own commands (board_host.py): press, bounce, complaint, burst, net. Loaded for the
# command line and dropped afterwards: a board at a counter has none of this code in its heap.
#   press V [HOLD_MS]   press rating button V (1 = worst) cleanly for HOLD_MS (default 60)
#   bounce V            press it with contact bounce on both edges
#   complaint           press the complaint button
#   burst N [EVERY_MS]  accept N debounced presses, cycling over the scale (soak runs)
#   net down|up         Wi-Fi lost / back
import time

from micropython import const

_FINGER = const(2)  # board_host.py's event "level": the finger goes down (the latency's start)

HOLD_MS = 60
# (offset ms, level) of a bouncy press: chatter on the way down and on the way up, as a worn switch
_BOUNCE = ((0, 1), (2, 0), (3, 1), (5, 0), (7, 1), (80, 0), (82, 1), (84, 0))


def command(board, words, now):
    cmd = words[0]
    bt = board._buttons
    if cmd in ("press", "bounce"):
        v = int(words[1])
        if not 1 <= v <= bt.count:
            print("press: button %d does not exist (1..%d)" % (v, bt.count))
            return
        hold = int(words[2]) if len(words) > 2 else HOLD_MS
        _schedule(board, v - 1, _BOUNCE if cmd == "bounce" else ((0, 1), (hold, 0)), now)
    elif cmd == "complaint":
        if bt.complaint < 0:
            print("complaint: no complaint button configured")
            return
        _schedule(board, bt.complaint, ((0, 1), (HOLD_MS, 0)), now)
    elif cmd == "burst":
        n = int(words[1])
        board._burst = [n, int(words[2]) if len(words) > 2 else 0, now, 0] if n > 0 else None
    else:  # net
        board._wifi = words[1] == "up"
        print("wifi " + ("up" if board._wifi else "down"))


def _schedule(board, i, pattern, now):
    # A finger cannot press a button that is still held, and a release followed by a press within
    # the debounce time is contact bounce, not two presses: a new press of a button starts once its
    # previous one has settled.
    start = now
    if time.ticks_diff(board._free_at[i], start) > 0:
        start = board._free_at[i]
    board._events.append((start, i, _FINGER))
    for off, level in pattern:
        board._events.append((time.ticks_add(start, off), i, level))
    board._free_at[i] = time.ticks_add(start, pattern[-1][0] + 2 * board._buttons.debounce_ms)
