# The persistent outbox under real MicroPython (-X heapsize=128k): recovery from torn and damaged
# writes at every byte offset, capacity and the counted drop policy, rotation, acks and re-sends.
import os
from binascii import crc32

import outbox as ob_mod
import recovery
from outbox import Outbox

EP = 7
RECORD_LEN = 34  # docs/firmware.md §2
SEG_SLOTS = 120  # the default segment size
TYP_RATING, F_TS = 1, 2  # a record's type "rating" and its flag "ts is valid"


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        os.remove(path + "/" + n)
    os.rmdir(path)


def _fresh(path, **kw):
    _rmtree(path)
    ob = Outbox(path, **kw)
    recovery.recover(ob)
    return ob


def _fill(ob, n, ep=EP, first=1):
    for seq in range(first, first + n):
        # value cycles 1..4, up and ts grow with seq: every record's bytes differ
        ob.append(TYP_RATING, 1 + seq % 4, 4, F_TS, ep, seq, 1000 * seq, 1795000000000 + seq)


def _drain(ob):
    out = []
    while True:
        r = ob.next_unsent()
        if r is None:
            return out
        out.append(r)


def _files(path):
    return sorted(os.listdir(path))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_records_roundtrip_across_restart_and_segments():
    ob = _fresh("ob", seg_slots=8, count=10)
    _fill(ob, 20)
    assert ob.pending == 20 and ob.segments == 3
    ob.close()
    ob2 = Outbox("ob", seg_slots=8, count=10)
    assert recovery.recover(ob2) == 20 and ob2.lost == 0 and ob2.max_ep == EP
    recs = _drain(ob2)
    assert [r[5] for r in recs] == list(range(1, 21))
    assert recs[4] == (TYP_RATING, 2, 4, F_TS, EP, 5, 5000, 1795000000005)
    # after a restart, new events never go into a recovered segment
    _fill(ob2, 3, ep=EP + 1)
    assert ob2.segments == 4 and len(_files("ob")) == 4


def _torn_case(full, n, cut):
    _rmtree("t")
    os.mkdir("t")
    _write("t/00000001.seg", full[:cut])
    ob = Outbox("t", seg_slots=8)
    return ob, recovery.recover(ob)


def test_torn_tail_at_every_byte_offset_keeps_all_complete_records():
    ob = _fresh("src", seg_slots=8)
    _fill(ob, 5)
    ob.close()
    full = _read("src/00000001.seg")
    assert len(full) == 5 * RECORD_LEN
    for off in range(RECORD_LEN + 1):
        cut = 4 * RECORD_LEN + off
        ob, pending = _torn_case(full, 5, cut)
        complete = 5 if off == RECORD_LEN else 4
        assert pending == complete, (off, pending)
        assert ob.lost == (1 if 0 < off < RECORD_LEN else 0), (off, ob.lost)
        recs = _drain(ob)
        assert [r[5] for r in recs] == list(range(1, complete + 1)), off
        # the complete records are byte for byte what was written
        assert _read("t/00000001.seg")[:complete * RECORD_LEN] == full[:complete * RECORD_LEN]
        # the damage is tombstoned: a second recovery neither counts it again nor loses anything
        _fill(ob, 2, ep=EP + 1)
        ob.close()
        ob2 = Outbox("t", seg_slots=8)
        assert recovery.recover(ob2) == complete + 2 and ob2.lost == 0, (off, ob2.lost)
        ob2.close()


def test_damaged_last_record_at_every_byte_offset_keeps_all_earlier_records():
    ob = _fresh("src", seg_slots=8)
    _fill(ob, 5)
    ob.close()
    full = _read("src/00000001.seg")
    for off in range(RECORD_LEN):
        at = 4 * RECORD_LEN + off
        for flip in (0x01, 0xFF):
            bad = bytearray(full)
            bad[at] ^= flip
            _rmtree("t")
            os.mkdir("t")
            _write("t/00000001.seg", bad)
            ob = Outbox("t", seg_slots=8)
            assert recovery.recover(ob) == 4 and ob.lost == 1, (off, flip)
            assert [r[5] for r in _drain(ob)] == [1, 2, 3, 4]
            ob.close()
            ob2 = Outbox("t", seg_slots=8)
            assert recovery.recover(ob2) == 4 and ob2.lost == 0
            ob2.close()


def test_a_damaged_record_in_the_middle_costs_only_itself():
    ob = _fresh("src", seg_slots=8)
    _fill(ob, 8)
    ob.close()
    bad = bytearray(_read("src/00000001.seg"))
    bad[3 * RECORD_LEN + 9] ^= 0x40  # inside seq 4
    bad[6 * RECORD_LEN] = 0x00  # magic of seq 7
    _write("src/00000001.seg", bad)
    ob = Outbox("src", seg_slots=8)
    assert recovery.recover(ob) == 6 and ob.lost == 2
    assert [r[5] for r in _drain(ob)] == [1, 2, 3, 5, 6, 8]


def test_a_segment_with_only_a_torn_first_record_is_removed():
    _rmtree("t")
    os.mkdir("t")
    _write("t/00000003.seg", b"\xe7\x01\x02")
    ob = Outbox("t", seg_slots=8)
    assert recovery.recover(ob) == 0 and ob.lost == 1 and _files("t") == []
    _fill(ob, 1, ep=2)
    assert _files("t") == ["00000001.seg"]


def test_capacity_is_bounded_and_overflow_drops_the_oldest_counted():
    ob = _fresh("cap", seg_slots=8, count=4)
    _fill(ob, 32)
    assert ob.pending == 32 and ob.dropped == 0
    _fill(ob, 1, first=33)
    assert ob.pending == 25 and ob.dropped == 8 and ob.segments == 4
    assert [r[5] for r in _drain(ob)][:3] == [9, 10, 11]
    ob.close()
    ob2 = Outbox("cap", seg_slots=8, count=4)
    assert recovery.recover(ob2) == 25


def test_overflow_counts_only_what_was_still_unacked():
    ob = _fresh("cap", seg_slots=8, count=2)
    _fill(ob, 16)
    for seq in (1, 2, 3):
        assert ob.ack(EP, seq)
    _fill(ob, 1, first=17)
    assert ob.dropped == 5 and ob.pending == 9


def test_default_outbox_holds_10000_events_in_a_small_heap():
    import gc

    ob = _fresh("big")
    capacity = SEG_SLOTS * 86  # the defaults: 120 records a segment, 86 segments
    assert capacity >= 10000
    gc.collect()
    before = gc.mem_alloc()
    _fill(ob, capacity)
    assert ob.pending == capacity and ob.dropped == 0
    ob.close()
    ob2 = Outbox("big")
    assert recovery.recover(ob2) == capacity and ob2.lost == 0
    gc.collect()
    # the index of a full outbox stays small: two of them fit in a few KB
    assert gc.mem_alloc() - before < 12 * 1024, gc.mem_alloc() - before
    _fill(ob2, 1, ep=EP + 1)
    assert ob2.dropped == SEG_SLOTS and ob2.pending == capacity - SEG_SLOTS + 1
    n = 0
    while ob2.next_unsent() is not None:
        n += 1
    assert n == ob2.pending


def test_acks_delete_segments_and_files_rotate():
    ob = _fresh("rot", seg_slots=4, count=8)
    _fill(ob, 10)
    assert _files("rot") == ["00000001.seg", "00000002.seg", "00000003.seg"]
    for seq in (4, 2, 3):
        assert ob.ack(EP, seq)
    assert not ob.ack(EP, 3)  # a second ack (a "dup" of a re-send) changes nothing
    assert not ob.ack(EP + 1, 1) and not ob.ack(EP, 99)
    assert ob.ack(EP, 1)
    assert _files("rot") == ["00000002.seg", "00000003.seg"]
    for seq in range(5, 11):
        ob.ack(EP, seq)
    assert ob.pending == 0 and _files("rot") == []
    _fill(ob, 1, first=11)
    assert _files("rot") == ["00000004.seg"]  # a fresh file: writes move across the flash


def test_send_cursor_window_and_rewind():
    ob = _fresh("cur", seg_slots=4, count=8)
    _fill(ob, 6)
    a = ob.next_unsent()
    b = ob.next_unsent()
    assert (a[5], b[5], ob.outstanding) == (1, 2, 2)
    assert ob.ack(EP, 2) and ob.outstanding == 1
    assert ob.ack(EP, 5) and ob.outstanding == 1  # acked before it was sent: not outstanding
    assert [r[5] for r in _drain(ob)] == [3, 4, 6] and ob.outstanding == 4
    ob.rewind()
    assert ob.outstanding == 0
    assert [r[5] for r in _drain(ob)] == [1, 3, 4, 6]


def test_flash_refusing_a_write_drops_the_oldest_and_retries():
    class Full(Exception):
        pass

    budget = [40]

    class Flaky:
        def __init__(self, path, mode):
            self.f = open(path, mode)  # noqa: SIM115 (closed by __exit__ or the outbox)

        def write(self, data):
            budget[0] -= 1
            if budget[0] < 0:
                self.f.write(data[:10])  # a partial write, then ENOSPC
                raise OSError(28)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    _rmtree("full")
    ob_mod.open = Flaky  # the outbox's file boundary: its appends and reads go through Flaky
    ob = Outbox("full", seg_slots=8, count=10)
    recovery.recover(ob)
    _fill(ob, 40)
    budget[0] = 0
    try:
        _fill(ob, 1, first=41)
    except OSError:
        pass
    else:
        raise AssertionError("a flash that keeps failing must raise")
    budget[0] = 100
    _fill(ob, 1, first=42)
    assert ob.dropped == 8, ob.dropped
    ob.close()
    del ob_mod.open
    ob2 = Outbox("full", seg_slots=8, count=10)
    got = recovery.recover(ob2)
    seqs = [r[5] for r in _drain(ob2)]
    assert got == len(seqs) and seqs[:2] == [9, 10] and seqs[-1] == 42 and 41 not in seqs, seqs
    # seq 41's partial writes went to fresh segments that were deleted again: the caller counts
    # that press as dropped once, and recovery finds nothing more to count
    assert ob2.lost == 0 and len(os.listdir("full")) == 5


def test_record_crc_is_crc32_ieee():
    # The record format (docs/firmware.md) names IEEE CRC-32, as binascii.crc32 computes it.
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
    assert crc32(b"") == 0


def test_records_appended_after_the_cursor_reached_the_end_are_sent():
    ob = _fresh("grow", seg_slots=4, count=8)
    _fill(ob, 1)
    assert ob.next_unsent()[5] == 1 and ob.next_unsent() is None
    _fill(ob, 1, first=2)  # the same segment grows behind the cursor
    assert ob.next_unsent()[5] == 2
    _fill(ob, 4, first=3)  # and a new segment starts
    assert [r[5] for r in _drain(ob)] == [3, 4, 5, 6]


def test_drop_oldest_on_demand_is_counted():
    ob = _fresh("dd", seg_slots=4, count=8)
    assert not recovery.drop_oldest(ob)
    _fill(ob, 6)
    assert recovery.drop_oldest(ob) and ob.dropped == 4 and ob.pending == 2
    assert [r[5] for r in _drain(ob)] == [5, 6]
