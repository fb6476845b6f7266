# Persistent outbox (docs/protocol.md §7, docs/firmware.md "Outbox format"): every press is written
# to flash before it is sent and forgotten only when the server's signed ack names its (ep, seq).
#
# Layout: a directory of segment files "<8 hex digits>.seg", numbered in append order. A segment is an
# array of fixed-size records (RECORD_LEN bytes), all of one boot epoch, with consecutive seq numbers:
# record k of a segment whose first record has seq s holds seq s + k. Fixed-size slots are what make
# recovery simple: a torn tail is a file size that is not a multiple of RECORD_LEN, and a corrupt
# record (bad CRC) is skipped without losing its neighbours. Segments are only ever appended to by the
# boot that created them; recovery seals every segment it finds, so no write ever lands after bytes
# of unknown state. A segment file is deleted once all its records are acked (or dropped).
#
# RAM: per segment a few array entries and a bitmap of acked slots, all preallocated for the maximum
# number of segments; acks are not persisted (a reboot re-sends acked records of partly acked
# segments, and the server answers "dup", §7), which spares one flash write per ack.
import os
import struct
import sys
from array import array

from binascii import crc32  # IEEE CRC-32, in C on every port the firmware runs on

from micropython import const

# Record: magic, typ, a, b, flags, 0, ep, seq, up, ts, then CRC-32 of those 30 bytes. 34 bytes.
_FMT = ">BBBBBBIIQQ"
_BODY_LEN = const(30)
RECORD_LEN = const(34)
_MAGIC = const(0xE7)  # record format 1; 0x00 marks a tombstone written over a record found damaged

TYP_RATING = const(1)
TYP_INCIDENT = const(2)
F_DURING_THANKS = const(1)
F_TS = const(2)  # ts is meaningful (the clock was synced when the event happened)

# 120 records fill one 4 KB flash sector (120 * 34 = 4080 bytes): a segment is then one littlefs
# block, and deleting a fully acked segment frees a whole block for wear levelling. Smaller segments
# spread wear more finely but cost RAM per segment; larger ones drop more at once when full.
SEG_SLOTS = const(120)
# 86 * 120 = 10,320 events >= 10,000 (issue 3), ~350 KB of flash: a third of a 4 MB ESP32's
# filesystem. Raising it costs 16 bytes of RAM per segment and flash space.
MAX_SEGMENTS = const(86)


def pack(buf, typ, a, b, flags, ep, seq, up, ts):
    """Fill buf (RECORD_LEN bytes) with one record and its CRC."""
    struct.pack_into(_FMT, buf, 0, _MAGIC, typ, a, b, flags, 0, ep, seq, up, ts)
    struct.pack_into(">I", buf, _BODY_LEN, crc32(memoryview(buf)[:_BODY_LEN]))


def unpack(buf):
    """(typ, a, b, flags, ep, seq, up, ts) of a record, or None if it is damaged or a tombstone."""
    if buf[0] != _MAGIC:
        return None
    if struct.unpack_from(">I", buf, _BODY_LEN)[0] != crc32(memoryview(buf)[:_BODY_LEN]):
        return None
    r = struct.unpack_from(_FMT, buf, 0)
    return r[1:5] + r[6:]


class Outbox:
    """Events waiting for the server's end-to-end ack, on flash, in append order."""

    def __init__(self, root, seg_slots=SEG_SLOTS, max_segments=MAX_SEGMENTS, opener=open):
        self.root = root
        self.seg_slots = seg_slots
        self.capacity = seg_slots * max_segments
        self._open = opener  # the file boundary; tests pass a flash-full double here
        t = max_segments
        self._t = t
        self._num = array("I", bytes(4 * t))  # segment file number
        self._ep = array("I", bytes(4 * t))
        self._first = array("I", bytes(4 * t))  # seq of slot 0
        self._n = array("H", bytes(2 * t))  # slots written (complete or not)
        self._live = array("H", bytes(2 * t))  # records still waiting for an ack
        self._bm = (seg_slots + 7) // 8
        self._acked = bytearray(t * self._bm)  # bit set = acked, dropped, damaged or tombstone
        self._h = 0  # physical index of the oldest segment
        self._c = 0  # number of segments
        self._sealed_upto = 0  # segments numbered <= this are never appended to again
        self._next_num = 1
        self._w = None  # open append handle of the newest segment
        self._wnum = 0
        self._r = None  # cached read handle
        self._rnum = 0
        self._buf = bytearray(RECORD_LEN)
        self._mv = memoryview(self._buf)
        self.pending = 0
        self.dropped = 0  # records discarded by the overflow policy since boot
        self.lost = 0  # records found torn or damaged since boot
        self.max_ep = 0  # highest epoch seen on flash (the boot epoch must exceed it)
        self._cur_num = 0  # send cursor: next record to send is at or after (segment, slot)
        self._cur_slot = 0
        self.outstanding = 0  # records sent since the last rewind and not yet acked

    # ---- helpers over the circular segment table ----

    def _path(self, num):
        return "%s/%08x.seg" % (self.root, num)

    def _bit(self, p, slot):
        return self._acked[p * self._bm + (slot >> 3)] & (1 << (slot & 7))

    def _set_bit(self, p, slot):
        self._acked[p * self._bm + (slot >> 3)] |= 1 << (slot & 7)

    # ---- recovery ----

    def recover(self):
        """Scan the flash after boot: rebuild the RAM index, seal every segment, tombstone damage.

        Returns the number of events waiting. The code is in recovery.py, in the heap only meanwhile."""
        import recovery

        try:
            return recovery.recover(self)
        finally:
            del sys.modules["recovery"]

    # ---- appending ----

    def append(self, typ, a, b, flags, ep, seq, up, ts):
        """Persist one event before it may be sent; raises OSError if the flash refuses it twice."""
        pack(self._buf, typ, a, b, flags, ep, seq, up, ts)
        try:
            self._append_buf(ep, seq)
        except OSError:
            # Flash full (or a failed sector): give up the segment whose tail is now unknown, make
            # room by the overflow policy, and try once more in a fresh segment.
            self._abandon_tail()
            if self._c > 1:
                self.drop_oldest()
            try:
                self._append_buf(ep, seq)
            except OSError:
                self._abandon_tail()
                raise
        self.pending += 1
        if ep > self.max_ep:
            self.max_ep = ep

    def _abandon_tail(self):
        # Never write after bytes of unknown state: seal the newest segment, and delete it if it
        # holds no complete record (so a failed first write is not found and counted at recovery).
        self._close_writer()
        self._sealed_upto = self._next_num - 1
        if self._c and not self._n[(self._h + self._c - 1) % self._t]:
            self._remove(self._c - 1)

    def _append_buf(self, ep, seq):
        k = self._c - 1
        p = (self._h + k) % self._t if self._c else 0
        if (not self._c or self._num[p] <= self._sealed_upto or self._n[p] >= self.seg_slots
                or self._ep[p] != ep or self._first[p] + self._n[p] != seq):
            p = self._new_segment(ep, seq)
        if self._w is None or self._wnum != self._num[p]:
            self._close_writer()
            self._w = self._open(self._path(self._num[p]), "ab")
            self._wnum = self._num[p]
        if self._rnum == self._wnum:
            self._close_reader()  # a read handle may not see appends made through another handle
        self._w.write(self._buf)
        self._w.flush()  # the durability point: littlefs commits the file here
        slot = self._n[p]
        self._acked[p * self._bm + (slot >> 3)] &= ~(1 << (slot & 7))
        self._n[p] = slot + 1
        self._live[p] += 1

    def _new_segment(self, ep, seq):
        self._close_writer()
        if self._c == self._t:
            self.drop_oldest()  # overflow policy: the oldest unacked events make room (counted)
        p = (self._h + self._c) % self._t
        self._num[p], self._ep[p], self._first[p] = self._next_num, ep, seq
        self._n[p] = self._live[p] = 0
        self._acked[p * self._bm:(p + 1) * self._bm] = bytes(self._bm)
        self._next_num += 1
        self._c += 1
        return p

    def drop_oldest(self):
        """Apply the overflow policy once (the caller needs flash space); False if nothing to drop."""
        if not self._c:
            return False
        p = self._h
        self.dropped += self._live[p]
        self.pending -= self._live[p]
        self._live[p] = 0
        self._remove(0)
        self._recount_outstanding()
        return True

    def _remove(self, k):
        # Delete segment k's file and close the gap in the circular table.
        p = (self._h + k) % self._t
        num = self._num[p]
        if self._wnum == num:
            self._close_writer()
        if self._rnum == num:
            self._close_reader()
        try:
            os.remove(self._path(num))
        except OSError:
            pass  # never created (a failed first write) or already gone
        if k == 0:  # the common case (oldest acked or dropped): move the head, copy nothing
            self._h = (self._h + 1) % self._t
            self._c -= 1
            return
        bm = self._bm
        for j in range(k, self._c - 1):
            a, b = (self._h + j) % self._t, (self._h + j + 1) % self._t
            self._num[a], self._ep[a], self._first[a] = self._num[b], self._ep[b], self._first[b]
            self._n[a], self._live[a] = self._n[b], self._live[b]
            self._acked[a * bm:(a + 1) * bm] = self._acked[b * bm:(b + 1) * bm]
        self._c -= 1

    def _close_writer(self):
        if self._w is not None:
            self._w.close()
            self._w = None
            self._wnum = 0

    def _close_reader(self):
        if self._r is not None:
            self._r.close()
            self._r = None
            self._rnum = 0

    # ---- acks and sending ----

    def ack(self, ep, seq):
        """Forget (ep, seq) after the server's ack; False if it is not (or no longer) in the outbox."""
        for k in range(self._c):
            p = (self._h + k) % self._t
            slot = seq - self._first[p]
            if self._ep[p] != ep or slot < 0 or slot >= self._n[p]:
                continue
            if self._bit(p, slot):
                return False
            self._set_bit(p, slot)
            self._live[p] -= 1
            self.pending -= 1
            num = self._num[p]
            if num < self._cur_num or (num == self._cur_num and slot < self._cur_slot):
                self.outstanding -= 1
            if not self._live[p]:
                self._remove(k)
            return True
        return False

    def rewind(self):
        """Send everything unacked again from the oldest (after a reconnect or the resend timeout)."""
        self._cur_num = self._num[self._h] if self._c else self._next_num
        self._cur_slot = 0
        self.outstanding = 0

    def _recount_outstanding(self):
        n = 0
        for k in range(self._c):
            p = (self._h + k) % self._t
            num = self._num[p]
            if num > self._cur_num:
                break
            end = self._n[p] if num < self._cur_num else min(self._cur_slot, self._n[p])
            for slot in range(end):
                if not self._bit(p, slot):
                    n += 1
        self.outstanding = n

    def next_unsent(self):
        """The next unacked record after the send cursor, as a tuple (see unpack), or None."""
        for k in range(self._c):
            p = (self._h + k) % self._t
            num = self._num[p]
            if num < self._cur_num:
                continue
            slot = self._cur_slot if num == self._cur_num else 0
            while slot < self._n[p]:
                if not self._bit(p, slot):
                    rec = self._read(num, slot)
                    if rec is not None and rec[4] == self._ep[p] and rec[5] == self._first[p] + slot:
                        self._cur_num, self._cur_slot = num, slot + 1
                        self.outstanding += 1
                        return rec
                    self._set_bit(p, slot)  # damaged since recovery: counted, never sent
                    self._live[p] -= 1
                    self.pending -= 1
                    self.lost += 1
                slot += 1
            # The cursor stays at the end of this segment: it may still grow (the newest one does).
            self._cur_num, self._cur_slot = num, slot
        return None

    def _read(self, num, slot):
        if self._rnum != num:
            self._close_reader()
            self._r = self._open(self._path(num), "rb")
            self._rnum = num
        self._r.seek(slot * RECORD_LEN)
        if self._r.readinto(self._mv) != RECORD_LEN:
            return None
        return unpack(self._buf)

    def segments(self):
        """Number of segment files in use (for status and tests)."""
        return self._c

    def close(self):
        self._close_writer()
        self._close_reader()
