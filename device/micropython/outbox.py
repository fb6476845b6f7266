# Persistent outbox (docs/protocol.md §7, docs/firmware.md "Outbox format"): every press is written
# to flash before it is sent and forgotten only when the server's signed ack names its (ep, seq).
#
# Layout: a directory of segment files "<8 hex digits>.seg", numbered in append order. A segment is an
# array of fixed-size records (34 bytes), all of one boot epoch, with consecutive seq numbers:
# record k of a segment whose first record has seq s holds seq s + k. Fixed-size slots are what make
# recovery simple: a torn tail is a file size that is not a multiple of 34, and a corrupt
# record (bad CRC) is skipped without losing its neighbours. Segments are only ever appended to by the
# boot that created them; recovery seals every segment it finds, so no write ever lands after bytes
# of unknown state. A segment file is deleted once all its records are acked (or dropped).
#
# RAM: per segment a few array entries and a bitmap of acked slots, all preallocated for the maximum
# number of segments; acks are not persisted (a reboot re-sends acked records of partly acked
# segments, and the server answers "dup", §7), which spares one flash write per ack.
#
# The rare paths (recovery at boot, the overflow policy, a write the flash refuses) are in
# recovery.py, loaded for the occasion: their code is not in the heap while the box runs.
import os
import struct
import sys
from array import array

from binascii import crc32  # IEEE CRC-32, in C on every port the firmware runs on

from micropython import const

# Record, 34 bytes big-endian (docs/firmware.md §2): magic, typ, a, b, flags, reserved 0, ep, seq,
# up, ts, then the CRC-32 of those 30 bytes. Module-private constants (const, leading underscore)
# are folded into the bytecode: no global, no interned name.
_BODY_LEN = const(30)
_RECORD_LEN = const(34)
_MAGIC = const(0xE7)  # record format 1; 0x00 marks a tombstone written over a record found damaged
# 120 records fill one 4 KB flash sector (120 * 34 = 4080 bytes): a segment is then one littlefs
# block, and deleting a fully acked segment frees a whole block for wear levelling. Smaller segments
# spread wear more finely but cost RAM per segment; larger ones drop more at once when full.
_SEG_SLOTS = const(120)
# 86 * 120 = 10,320 events >= 10,000 (issue 3), ~350 KB of flash: a third of a 4 MB ESP32's
# filesystem. Raising it costs 16 bytes of RAM per segment and flash space.
_MAX_SEGMENTS = const(86)


def pack(buf, typ, value, levels, flags, ep, seq, up, ts):
    """Fill buf (34 bytes) with one record and its CRC."""
    struct.pack_into(">BBBBBxIIQQ", buf, 0, _MAGIC, typ, value, levels, flags, ep, seq, up, ts)
    buf[_BODY_LEN:] = crc32(memoryview(buf)[:_BODY_LEN]).to_bytes(4, "big")


def unpack(buf):
    """(typ, value, levels, flags, ep, seq, up, ts) of a record (value: the rating, or the incident
    kind; levels: the scale, 0 for an incident), or None if it is damaged or a tombstone."""
    if buf[0] != _MAGIC or int.from_bytes(buf[_BODY_LEN:], "big") != crc32(memoryview(buf)[:_BODY_LEN]):
        return None
    return struct.unpack_from(">xBBBBxIIQQ", buf, 0)


class Outbox:
    """Events waiting for the server's end-to-end ack, on flash, in append order."""

    def __init__(self, dir, seg_slots=_SEG_SLOTS, count=_MAX_SEGMENTS):
        """The outbox in directory dir: segments of seg_slots records, `count` segments at most."""
        self.dir = dir
        self.seg_slots = seg_slots
        t = self._t = count
        self._num = array("I", bytes(4 * t))  # segment file number
        self._ep = array("I", bytes(4 * t))
        self._first = array("I", bytes(4 * t))  # seq of slot 0
        self._n = array("H", bytes(2 * t))  # slots written (complete or not)
        self._live = array("H", bytes(2 * t))  # records still waiting for an ack
        self._bm = (seg_slots + 7) // 8
        self._acked = bytearray(t * self._bm)  # bit set = acked, dropped, damaged or tombstone
        self.head = 0  # physical index of the oldest segment
        self.segments = 0  # segments in use
        self._sealed = 0  # segments numbered <= this are never appended to again
        self._next_num = 1
        self.file = self.stream = None  # the open append handle of the newest segment; a cached read handle
        self._wnum = self._rnum = 0  # the segments they are open on
        self.buf = bytearray(_RECORD_LEN)
        self.pending = 0
        self.dropped = 0  # records discarded by the overflow policy since boot
        self.lost = 0  # records found torn or damaged since boot
        self.max_ep = 0  # highest epoch seen on flash (the boot epoch must exceed it)
        self._cur_num = self._cur_slot = 0  # send cursor: the next record to send is at or after it
        self.outstanding = 0  # records sent since the last rewind and not yet acked

    def path(self, n):
        """The file of segment number n."""
        return "%s/%08x.seg" % (self.dir, n)

    def _bit(self, i, pos, flag=False):
        # The bit of slot pos in the acked bitmap of physical segment i (set it with flag): its old value.
        k = i * self._bm + (pos >> 3)
        m = 1 << (pos & 7)
        was = self._acked[k] & m
        if flag:
            self._acked[k] |= m
        return was

    def _rare(self, name, *args):
        # Run recovery.name(self, *args): code needed at boot or when something failed, not resident.
        import recovery

        try:
            return getattr(recovery, name)(self, *args)
        finally:
            sys.modules.pop("recovery", None)  # may be nested: a failed write during an overflow

    # ---- appending ----

    def append(self, typ, value, levels, flags, ep, seq, up, ts):
        """Persist one event before it may be sent; raises OSError if the flash refuses it twice."""
        pack(self.buf, typ, value, levels, flags, ep, seq, up, ts)
        try:
            self.write(ep, seq)
        except OSError:
            self._rare("write_failed", ep, seq)  # room made, written once more, or it raises
        self.pending += 1
        if ep > self.max_ep:
            self.max_ep = ep

    def write(self, ep, seq):
        """Append the record in buf to the segment it belongs to (a new one if needed), durably."""
        p = (self.head + self.segments - 1) % self._t
        if (not self.segments or self._num[p] <= self._sealed or self._n[p] >= self.seg_slots
                or self._ep[p] != ep or self._first[p] + self._n[p] != seq):
            p = self._new_segment(ep, seq)
        num = self._num[p]
        if self._wnum != num:
            self._close(True)
            self.file = open(self.path(num), "ab")
            self._wnum = num
        if self._rnum == num:
            self._close(False)  # a read handle may not see appends made through another handle
        self.file.write(self.buf)
        self.file.flush()  # the durability point: littlefs commits the file here
        self._n[p] += 1
        self._live[p] += 1

    def _new_segment(self, ep, seq):
        self._close(True)
        if self.segments == self._t:
            self._rare("drop_oldest")  # overflow policy: the oldest unacked events make room (counted)
        p = (self.head + self.segments) % self._t
        self._num[p], self._ep[p], self._first[p] = self._next_num, ep, seq
        self._n[p] = self._live[p] = 0
        self._acked[p * self._bm:(p + 1) * self._bm] = bytes(self._bm)
        self._next_num += 1
        self.segments += 1
        return p

    def remove(self, n):
        """Delete the n-th oldest segment's file and close the gap in the circular table."""
        p = (self.head + n) % self._t
        num = self._num[p]
        if self._wnum == num:
            self._close(True)
        if self._rnum == num:
            self._close(False)
        try:
            os.remove(self.path(num))
        except OSError:
            pass  # never created (a failed first write) or already gone
        self.segments -= 1
        if n == 0:  # the common case (oldest acked or dropped): move the head, copy nothing
            self.head = (self.head + 1) % self._t
            return
        bm = self._bm
        for j in range(n, self.segments):
            a, b = (self.head + j) % self._t, (self.head + j + 1) % self._t
            self._num[a], self._ep[a], self._first[a] = self._num[b], self._ep[b], self._first[b]
            self._n[a], self._live[a] = self._n[b], self._live[b]
            self._acked[a * bm:(a + 1) * bm] = self._acked[b * bm:(b + 1) * bm]

    def _close(self, write):
        # Close the append handle (write) or the cached read handle.
        f = self.file if write else self.stream
        if f is not None:
            f.close()
        if write:
            self.file, self._wnum = None, 0
        else:
            self.stream, self._rnum = None, 0

    # ---- acks and sending ----

    def ack(self, ep, seq):
        """Forget (ep, seq) after the server's ack; False if it is not (or no longer) in the outbox."""
        for k in range(self.segments):
            p = (self.head + k) % self._t
            slot = seq - self._first[p]
            if self._ep[p] != ep or slot < 0 or slot >= self._n[p]:
                continue
            if self._bit(p, slot, True):
                return False
            self._live[p] -= 1
            self.pending -= 1
            num = self._num[p]
            if num < self._cur_num or (num == self._cur_num and slot < self._cur_slot):
                self.outstanding -= 1
            if not self._live[p]:
                self.remove(k)
            return True
        return False

    def rewind(self):
        """Send everything unacked again from the oldest (after a reconnect or the resend timeout)."""
        self._cur_num = self._num[self.head] if self.segments else self._next_num
        self._cur_slot = 0
        self.outstanding = 0

    def next_unsent(self):
        """The next unacked record after the send cursor, as a tuple (see unpack), or None."""
        for k in range(self.segments):
            p = (self.head + k) % self._t
            num = self._num[p]
            if num < self._cur_num:
                continue
            slot = self._cur_slot if num == self._cur_num else 0
            while slot < self._n[p]:
                if not self._bit(p, slot):
                    rec = self.read(num, slot)
                    if rec is not None and rec[4] == self._ep[p] and rec[5] == self._first[p] + slot:
                        self._cur_num, self._cur_slot = num, slot + 1
                        self.outstanding += 1
                        return rec
                    self._bit(p, slot, True)  # damaged since recovery: counted, never sent
                    self._live[p] -= 1
                    self.pending -= 1
                    self.lost += 1
                slot += 1
            # The cursor stays at the end of this segment: it may still grow (the newest one does).
            self._cur_num, self._cur_slot = num, slot
        return None

    def read(self, n, pos):
        """The record in slot pos of segment number n (see unpack), or None."""
        if self._rnum != n:
            self._close(False)
            self.stream = open(self.path(n), "rb")
            self._rnum = n
        self.stream.seek(pos * _RECORD_LEN)
        if self.stream.readinto(self.buf) != _RECORD_LEN:
            return None
        return unpack(self.buf)

    def close(self):
        self._close(True)
        self._close(False)
