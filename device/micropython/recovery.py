# The outbox's rare paths (outbox.py, docs/firmware.md §2): the recovery scan after power-on, the
# overflow policy, and what happens when the flash refuses a write. Outbox._rare loads this module
# for the occasion and drops it afterwards, so its code is not in the heap while the box runs; the
# functions work on the Outbox's own tables, as methods would.
import os

from micropython import const

_RECORD_LEN = const(34)  # outbox.py's record size


def recover(ob):
    """Scan the flash after boot: rebuild ob's index, seal every segment, tombstone damage; returns
    the number of events waiting."""
    try:
        os.mkdir(ob.root)
    except OSError:
        pass  # exists
    names = sorted(n for n in os.listdir(ob.root) if n.endswith(".seg") and len(n) == 12)
    while len(names) > ob._t:  # the capacity was lowered since these were written
        path = ob.root + "/" + names.pop(0)
        ob.dropped += os.stat(path)[6] // _RECORD_LEN  # upper bound: acks are not persisted
        os.remove(path)
    for name in names:
        _segment(ob, int(name[:8], 16))
    if ob.segments:
        ob._next_num = ob._num[(ob._h + ob.segments - 1) % ob._t] + 1
        ob._sealed = ob._next_num - 1
    ob.rewind()
    return ob.pending


def _segment(ob, num):
    # Keep the records whose magic, CRC, ep and seq (= first + slot) agree; count the others once.
    from outbox import unpack

    path = ob._path(num)
    size = os.stat(path)[6]
    slots = min(size // _RECORD_LEN, ob.seg_slots)
    p = (ob._h + ob.segments) % ob._t
    bm = ob._bm
    ob._acked[p * bm:(p + 1) * bm] = bytes(bm)
    ep = first = live = 0
    damaged = []
    with open(path, "rb") as f:
        for slot in range(slots):
            f.readinto(ob._buf)
            rec = unpack(ob._buf)
            if rec is not None and not live:
                ep, first = rec[4], rec[5] - slot
            if rec is None or rec[4] != ep or rec[5] != first + slot:
                ob._bit(p, slot, True)
                if any(ob._buf):  # not a tombstone: damage found now
                    damaged.append(slot)
                continue
            live += 1
    if size % _RECORD_LEN and slots < ob.seg_slots:
        damaged.append(slots)  # a torn tail: the press being written when the power went
        ob._bit(p, slots, True)
        slots += 1
    ob.lost += len(damaged)
    if not live:
        os.remove(path)
        return
    if damaged:
        # Overwrite damaged slots so that the next recovery neither counts them again nor trips on
        # a torn tail. A power cut here only leaves the same damage for the next boot to find.
        with open(path, "r+b") as f:
            for slot in damaged:
                f.seek(slot * _RECORD_LEN)
                f.write(bytes(_RECORD_LEN))
            f.flush()
    ob._num[p], ob._ep[p], ob._first[p] = num, ep, first
    ob._n[p], ob._live[p] = slots, live
    ob.segments += 1
    ob.pending += live
    if ep > ob.max_ep:
        ob.max_ep = ep


def drop_oldest(ob):
    """Apply the overflow policy once (the caller needs flash space); False if nothing to drop."""
    if not ob.segments:
        return False
    p = ob._h
    ob.dropped += ob._live[p]
    ob.pending -= ob._live[p]
    ob._live[p] = 0
    ob._remove(0)
    # The send cursor may have passed records of the dropped segment: count what is outstanding.
    n = 0
    for k in range(ob.segments):
        p = (ob._h + k) % ob._t
        num = ob._num[p]
        if num > ob._cur_num:
            break
        end = ob._n[p] if num < ob._cur_num else min(ob._cur_slot, ob._n[p])
        for slot in range(end):
            if not ob._bit(p, slot):
                n += 1
    ob.outstanding = n
    return True


def write_failed(ob, ep, seq):
    """The flash refused the record in ob's buffer (full, or a failed sector): give up the segment
    whose tail is now unknown, make room by the overflow policy and write once more in a fresh
    segment; raises OSError if that fails too."""
    _abandon_tail(ob)
    if ob.segments > 1:
        drop_oldest(ob)
    try:
        ob._write(ep, seq)
    except OSError:
        _abandon_tail(ob)
        raise


def _abandon_tail(ob):
    # Never write after bytes of unknown state: seal the newest segment, and delete it if it holds
    # no complete record (so a failed first write is not found and counted at recovery).
    ob._close_writer()
    ob._sealed = ob._next_num - 1
    if ob.segments and not ob._n[(ob._h + ob.segments - 1) % ob._t]:
        ob._remove(ob.segments - 1)
