# Commands typed on the console (the desk's stdin; tests/firmware drive the firmware with them):
# `status` prints the firmware's state as one line, `mem` the interpreter's heap and interned-name
# report (micropython.mem_info, qstr_info), `quit` stops it cleanly. A box at a counter never
# gets one, so this code is loaded by App._cold when a command arrives and dropped afterwards.
import gc
import sys
import time

from link import STATUS_OFFLINE


def command(app, words):
    if words[0] == "status":
        app.board.emit("status", **status(app))
    elif words[0] == "mem":
        import micropython

        micropython.mem_info()
        micropython.qstr_info()
    elif words[0] == "quit":
        shutdown(app)
    else:
        app.board.log("unknown command %r" % words[0])


def status(app):
    """The firmware's state and counters, as a dict (the desk's `status` line)."""
    ob, mq, bt = app.outbox, app.mq, app.buttons
    st = {"ep": app.ep, "seq": app.seq, "pending": ob.pending, "outstanding": ob.outstanding,
          "segments": ob.segments(), "dropped": app.dropped, "lost": ob.lost, "online": mq.connected,
          "synced": app.offset is not None, "up": app.up, "mem_free": gc.mem_free(),
          "mem_alloc": gc.mem_alloc(), "base_alloc": app.base_alloc, "peak_alloc": app.peak_alloc,
          "peak_live": app.peak_live, "cfg_rev": app.cfg_rev, "levels": bt.levels, "thanks_ms": bt.thanks_ms,
          "hb_ms": app.hb_ms, "overflow": bt.overflow, "ignored": bt.ignored, "pings": mq.pings,
          "pongs": mq.pongs, "pubacks": mq.pubacks, "discarded": mq.discarded,
          "wdt_max_gap": app.board.wdt_max_gap}
    st.update(app.stats)
    return st


def shutdown(app):
    """Orderly stop: retained offline status, DISCONNECT (so no last will), files closed."""
    mq = app.mq
    if mq.connected:
        try:
            mq.publish(app.t_status, STATUS_OFFLINE, time.ticks_ms(), qos=1, retain=True)
            deadline = time.ticks_add(time.ticks_ms(), 1000)
            while mq._pids.count(0) < len(mq._pids) and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                mq.poll(time.ticks_ms())
                time.sleep_ms(5)
        except Exception:
            pass  # best effort: the will says "offline" anyway
    mq.disconnect()
    app.outbox.close()
    app.board.emit("bye")
    sys.exit(0)
