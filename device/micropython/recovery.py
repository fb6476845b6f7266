# The outbox's rare paths (outbox.py, docs/firmware.md §2): the recovery scan after power-on, the
# overflow policy, and what happens when the flash refuses a write. Outbox._rare loads this module
# for the occasion and drops it afterwards, so its code is not in the heap while the box runs; the
# functions work on the Outbox's own tables, as methods would.
import os

from micropython import const

_RECORD_LEN = const(34)  # outbox.py's record size


def recover(outbox):
    """Scan the flash after boot: rebuild outbox's index, seal every segment, tombstone damage; returns
    the number of events waiting."""
    try:
        os.mkdir(outbox.dir)
    except OSError:
        pass  # exists
    names = sorted(n for n in os.listdir(outbox.dir) if n.endswith(".seg") and len(n) == 12)
    while len(names) > outbox._t:  # the capacity was lowered since these were written
        path = outbox.dir + "/" + names.pop(0)
        outbox.dropped += os.stat(path)[6] // _RECORD_LEN  # upper bound: acks are not persisted
        os.remove(path)
    for name in names:
        _segment(outbox, int(name[:8], 16))
    if outbox.segments:
        outbox._next_num = outbox._num[(outbox.head + outbox.segments - 1) % outbox._t] + 1
        outbox._sealed = outbox._next_num - 1
    outbox.rewind()
    return outbox.pending


def _segment(outbox, n):
    # Keep the records whose magic, CRC, ep and seq (= first + slot) agree; count the others once.
    from outbox import unpack

    path = outbox.path(n)
    size = os.stat(path)[6]
    slots = min(size // _RECORD_LEN, outbox.seg_slots)
    p = (outbox.head + outbox.segments) % outbox._t
    bm = outbox._bm
    outbox._acked[p * bm:(p + 1) * bm] = bytes(bm)
    ep = first = live = 0
    damaged = []
    with open(path, "rb") as f:
        for slot in range(slots):
            f.readinto(outbox.buf)
            rec = unpack(outbox.buf)
            if rec is not None and not live:
                ep, first = rec[4], rec[5] - slot
            if rec is None or rec[4] != ep or rec[5] != first + slot:
                outbox._bit(p, slot, True)
                if any(outbox.buf):  # not a tombstone: damage found now
                    damaged.append(slot)
                continue
            live += 1
    if size % _RECORD_LEN and slots < outbox.seg_slots:
        damaged.append(slots)  # a torn tail: the press being written when the power went
        outbox._bit(p, slots, True)
        slots += 1
    outbox.lost += len(damaged)
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
    outbox._num[p], outbox._ep[p], outbox._first[p] = n, ep, first
    outbox._n[p], outbox._live[p] = slots, live
    outbox.segments += 1
    outbox.pending += live
    if ep > outbox.max_ep:
        outbox.max_ep = ep


def drop_oldest(outbox):
    """Apply the overflow policy once (the caller needs flash space); False if nothing to drop."""
    if not outbox.segments:
        return False
    p = outbox.head
    outbox.dropped += outbox._live[p]
    outbox.pending -= outbox._live[p]
    outbox._live[p] = 0
    outbox.remove(0)
    # The send cursor may have passed records of the dropped segment: count what is outstanding.
    n = 0
    for k in range(outbox.segments):
        p = (outbox.head + k) % outbox._t
        num = outbox._num[p]
        if num > outbox._cur_num:
            break
        end = outbox._n[p] if num < outbox._cur_num else min(outbox._cur_slot, outbox._n[p])
        for slot in range(end):
            if not outbox._bit(p, slot):
                n += 1
    outbox.outstanding = n
    return True


def write_failed(outbox, ep, seq):
    """The flash refused the record in outbox's buffer (full, or a failed sector): give up the segment
    whose tail is now unknown, make room by the overflow policy and write once more in a fresh
    segment; raises OSError if that fails too."""
    _abandon_tail(outbox)
    if outbox.segments > 1:
        drop_oldest(outbox)
    try:
        outbox.write(ep, seq)
    except OSError:
        _abandon_tail(outbox)
        raise


def _abandon_tail(outbox):
    # Never write after bytes of unknown state: seal the newest segment, and delete it if it holds
    # no complete record (so a failed first write is not found and counted at recovery).
    outbox._close(True)
    outbox._sealed = outbox._next_num - 1
    if outbox.segments and not outbox._n[(outbox.head + outbox.segments - 1) % outbox._t]:
        outbox.remove(outbox.segments - 1)
