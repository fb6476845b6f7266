# The boot half of the outbox (outbox.py, docs/firmware.md "Outbox format", Recovery): scan the
# segment files once after power-on, rebuild the RAM index, seal every segment and tombstone damage.
# Run once per boot by Outbox.recover(), which loads this module for the scan and drops it after:
# its code does not stay in the heap. It works on the Outbox's own tables, as a method would.
import os

from outbox import RECORD_LEN, unpack


def recover(ob):
    """Rebuild ob's index from the flash; returns the number of events waiting."""
    try:
        os.mkdir(ob.root)
    except OSError:
        pass  # exists
    names = sorted(n for n in os.listdir(ob.root) if n.endswith(".seg") and len(n) == 12)
    while len(names) > ob._t:  # the capacity was lowered since these were written
        path = ob.root + "/" + names.pop(0)
        ob.dropped += os.stat(path)[6] // RECORD_LEN  # upper bound: acks are not persisted
        os.remove(path)
    for name in names:
        _segment(ob, int(name[:8], 16))
    if ob._c:
        ob._next_num = ob._num[(ob._h + ob._c - 1) % ob._t] + 1
        ob._sealed_upto = ob._next_num - 1
    ob.rewind()
    return ob.pending


def _segment(ob, num):
    # Keep the records whose magic, CRC, ep and seq (= first + slot) agree; count the others once.
    path = ob._path(num)
    size = os.stat(path)[6]
    slots = min(size // RECORD_LEN, ob.seg_slots)
    p = (ob._h + ob._c) % ob._t
    bm = ob._bm
    ob._acked[p * bm:(p + 1) * bm] = bytes(bm)
    ep = first = live = 0
    damaged = []
    with ob._open(path, "rb") as f:
        for slot in range(slots):
            f.readinto(ob._mv)
            rec = unpack(ob._buf)
            if rec is not None and not live:
                ep, first = rec[4], rec[5] - slot
            if rec is None or rec[4] != ep or rec[5] != first + slot:
                ob._set_bit(p, slot)
                if any(ob._buf):  # not a tombstone: damage found now
                    damaged.append(slot)
                continue
            live += 1
    if size % RECORD_LEN and slots < ob.seg_slots:
        damaged.append(slots)  # a torn tail: the press being written when the power went
        ob._set_bit(p, slots)
        slots += 1
    ob.lost += len(damaged)
    if not live:
        os.remove(path)
        return
    if damaged:
        # Overwrite damaged slots so that the next recovery neither counts them again nor trips on
        # a torn tail. A power cut here only leaves the same damage for the next boot to find.
        with ob._open(path, "r+b") as f:
            for slot in damaged:
                f.seek(slot * RECORD_LEN)
                f.write(bytes(RECORD_LEN))
            f.flush()
    ob._num[p], ob._ep[p], ob._first[p] = num, ep, first
    ob._n[p], ob._live[p] = slots, live
    ob._c += 1
    ob.pending += live
    if ep > ob.max_ep:
        ob.max_ep = ep
