# Commands typed on the console (the desk's stdin; tests/firmware drive the firmware with them):
# `status` prints the firmware's state as one line, `mem` the interpreter's heap and interned-name
# report (micropython.mem_info, qstr_info), `quit` stops it cleanly. A box at a counter never gets
# one, so this code is loaded by App.load when a command arrives and dropped afterwards.
import gc
import sys
import time

# The status line (one format string: its member names are not interned).
_STATUS = ('@{"t":"status","ep":%d,"seq":%d,"pending":%d,"outstanding":%d,"segments":%d,"dropped":%d,'
           '"lost":%d,"online":%s,"synced":%s,"up":%d,"mem_free":%d,"mem_alloc":%d,"base_alloc":%d,'
           '"peak_alloc":%d,"peak_live":%d,"cfg_rev":%d,"levels":%d,"thanks_ms":%d,"hb_ms":%d,"overflow":%d,'
           '"ignored":%d,"pings":%d,"pongs":%d,"pubacks":%d,"discarded":%d,"wdt_max_gap":%d')


def command(app, words):
    if words[0] == "status":
        status(app)
    elif words[0] == "mem":
        import micropython

        micropython.mem_info()
        micropython.qstr_info()
    elif words[0] == "quit":
        shutdown(app)
    else:
        print("unknown command %r (status, mem, quit)" % words[0])


def status(app):
    """The firmware's state and counters, as one "@" JSON line of the desk's channel."""
    ob, mq, bt = app.outbox, app.mq, app.buttons
    out = sys.stdout
    out.write(_STATUS % (
        app.ep, app.seq, ob.pending, ob.outstanding, ob.segments, app.dropped, ob.lost, _json(mq.connected),
        _json(app.offset is not None), app.up, gc.mem_free(), gc.mem_alloc(), app.base_alloc, app.peak_alloc,
        app.peak_live, app.cfg_rev, bt.levels, bt.thanks_ms, app.hb_ms, bt.overflow, bt.ignored, mq.pings,
        mq.pongs, mq.pubacks, mq.discarded, app.board.wdt_max_gap))
    for name in app.stats:
        out.write(',"%s":%d' % (name, app.stats[name]))
    out.write("}\n")


def _json(flag):
    return "true" if flag else "false"


def shutdown(app):
    """Orderly stop: retained offline status, DISCONNECT (so no last will), files closed."""
    import link

    mq = app.mq
    if mq.connected:
        try:
            mq.publish(app.t_status, link.OFFLINE, time.ticks_ms(), qos=1, retain=True)
            deadline = time.ticks_add(time.ticks_ms(), 1000)
            while mq._pids.count(0) < len(mq._pids) and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                mq.poll(time.ticks_ms())
                time.sleep_ms(5)
        except Exception:
            pass  # best effort: the will says "offline" anyway
    link.session("disconnect", mq)
    app.outbox.close()
    app.board.emit("bye")
    sys.exit(0)
