# The commands of the desk's console (board_host.py reads them from stdin; tests/firmware drive the
# firmware with them). Loaded for the command line by App.load and dropped afterwards: a box at a
# counter has none of this code in its heap.
#   press V [HOLD_MS]   press rating button V (1 = worst) cleanly for HOLD_MS (default 60)
#   bounce V            press it with contact bounce on both edges
#   complaint           press the complaint button
#   burst N [EVERY_MS]  accept N debounced presses, cycling over the scale (soak runs)
#   net down|up         Wi-Fi lost / back
#   status              the firmware's state and counters as one "@" JSON line
#   mem                 the interpreter's heap and interned-name report (micropython.mem_info, qstr_info)
#   quit                orderly stop: retained offline status, MQTT DISCONNECT, files closed
import gc
import sys
import time

from micropython import const

_FINGER = const(2)  # board_host.py's event "level": the finger goes down (the latency's start)
_HOLD_MS = const(60)

def command(board, args, now):
    """One console line, split into words."""
    cmd = args[0]
    bt = board.buttons
    if cmd in ("press", "bounce"):
        v = int(args[1])
        if not 1 <= v <= bt.count:
            print("press: button %d does not exist (1..%d)" % (v, bt.count))
            return
        hold = int(args[2]) if len(args) > 2 else _HOLD_MS
        # (offset ms, level): a bouncy press chatters on the way down and on the way up, as a worn switch
        _schedule(board, v - 1, ((0, 1), (2, 0), (3, 1), (5, 0), (7, 1), (80, 0), (82, 1), (84, 0))
                  if cmd == "bounce" else ((0, 1), (hold, 0)), now)
    elif cmd == "complaint":
        if bt.complaint < 0:
            print("complaint: no complaint button configured")
            return
        _schedule(board, bt.complaint, ((0, 1), (_HOLD_MS, 0)), now)
    elif cmd == "burst":
        n = int(args[1])
        board._burst = [n, int(args[2]) if len(args) > 2 else 0, now, 0] if n > 0 else None
    elif cmd == "net":
        board._wifi = args[1] == "up"
        print("Wi-Fi switched %s" % args[1])
    elif cmd == "status":
        status(board.app)
    elif cmd == "mem":
        import micropython

        micropython.mem_info()
        micropython.qstr_info()
    elif cmd == "quit":
        shutdown(board.app)
    else:
        print("unknown command %r: press, bounce, complaint, burst, net, status, mem, quit" % cmd)


def _schedule(board, i, levels, now):
    # A finger cannot press a button that is still held, and a release followed by a press within
    # the debounce time is contact bounce, not two presses: a new press of a button starts once its
    # previous one has settled. levels: (offset ms, level) of the pin changes.
    start = now
    if time.ticks_diff(board._free_at[i], start) > 0:
        start = board._free_at[i]
    board._events.append((start, i, _FINGER))
    for off, level in levels:
        board._events.append((time.ticks_add(start, off), i, level))
    board._free_at[i] = time.ticks_add(start, levels[-1][0] + 2 * board.buttons.debounce_ms)


def status(app):
    """The firmware's state and counters, as one "@" JSON line of the desk's channel."""
    ob, mq, bt, mem, n, c = app.outbox, app.mq, app.buttons, app.mem, app.mq.stats, app.stats
    # One format string: the member names are not interned. The counters at the end are mq.stats
    # and App.stats in their order.
    sys.stdout.write(('@{"t":"status","ep":%d,"seq":%d,"pending":%d,"outstanding":%d,"segments":%d,"dropped":%d,'
                     '"lost":%d,"online":%s,"synced":%s,"up":%d,"mem_free":%d,"mem_alloc":%d,"base_alloc":%d,'
                     '"peak_alloc":%d,"peak_live":%d,"cfg_rev":%d,"levels":%d,"thanks_ms":%d,"hb_ms":%d,"overflow":%d,'
                     '"ignored":%d,"discarded":%d,"pings":%d,"pongs":%d,"pubacks":%d,"wdt_max_gap":%d,"connects":%d,'
                     '"sent":%d,"acked":%d,"resends":%d,"bad_msgs":%d,"hb":%d,"ntp":%d}\n') % (
        app.ep, app.seq, ob.pending, ob.outstanding, ob.segments, app.dropped, ob.lost,
        str(mq.connected).lower(), str(app.offset is not None).lower(), app.up,
        gc.mem_free(), gc.mem_alloc(), mem[0], mem[1], mem[2], app.cfg_rev, bt.levels, bt.thanks_ms, app.hb_ms,
        bt.overflow, bt.ignored, n[0], n[1], n[2], n[3], app.board.wdt_max_gap, c[0], c[1], c[2], c[3], c[4], c[5],
        c[6]))


def shutdown(app):
    """Orderly stop: retained offline status, DISCONNECT (so no last will), files closed."""
    import link

    mq = app.mq
    if mq.connected:
        try:
            mq.publish(b"status", b'{"online":false}', time.ticks_ms(), qos=1, retain=True)  # as the will
            deadline = time.ticks_add(time.ticks_ms(), 1000)
            while mq._pids.count(0) < len(mq._pids) and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                mq.poll(time.ticks_ms())
                time.sleep_ms(5)
        except Exception:
            pass  # best effort: the will says "offline" anyway
    link.disconnect(mq)
    app.outbox.close()
    app.board.emit("bye")
    sys.exit(0)
