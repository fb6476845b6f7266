"""The whole firmware (device/micropython, unmodified) under the real MicroPython unix port with a
128 KB heap, talking MQTT to a real Mosquitto, with tests/firmware/ack_harness.py in the server's
place. Outages are real: the broker is SIGKILLed, the firmware is SIGKILLed (a power cut), and the
network is cut silently by a proxy. Timing knobs are compressed (firmware_process.FAST_KNOBS)."""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from motcua.protocol import encode_ack
from tests.firmware.ack_harness import AckHarness, Key
from tests.firmware.conftest import DEVICE, BoxFactory
from tests.firmware.firmware_process import FirmwareProcess
from tests.firmware.sntp_server import SntpServer
from tests.firmware.tcp_proxy import CuttableProxy
from tests.utils.services import Mosquitto

pytestmark = pytest.mark.broker


def _keys(pairs: list[tuple[int, int]]) -> set[Key]:
    return {(DEVICE, ep, seq) for ep, seq in pairs}


def _assert_exactly_once(h: AckHarness, fw: FirmwareProcess) -> None:
    """Everything the firmware put on flash is stored once; nothing else; no (ep, seq) reused."""
    persisted = {(DEVICE, int(e["ep"]), int(e["seq"])) for e in fw.of("evt")}
    assert len(persisted) == len(fw.of("evt")), "the firmware assigned one (ep, seq) twice"
    assert set(h.stored) == persisted
    assert h.conflicts == [] and h.refused == []


def test_presses_are_signed_stored_once_and_cleared_from_the_outbox(harness: AckHarness,
                                                                     make_box: BoxFactory) -> None:
    fw = make_box().start()
    fw.wait_for("online")
    pairs = [fw.press(v) for v in (1, 2, 3, 4, 4)]
    pairs.append(fw.press(2, bounce=True))  # contact chatter on both edges: still one press
    incident = fw.complaint()
    pairs.append(incident)
    harness.wait_stored(_keys(pairs))
    fw.wait_drained()
    assert [seq for _ep, seq in pairs] == list(range(1, 8)) and {ep for ep, _ in pairs} == {fw.epoch}
    bodies = [harness.docs[(DEVICE, ep, seq)]["body"] for ep, seq in pairs]
    assert bodies[:6] == [{"value": v, "levels": 4} for v in (1, 2, 3, 4, 4, 2)]
    assert bodies[6] == {"kind": "complaint"}
    assert harness.docs[(DEVICE, *incident)]["typ"] == "incident"
    assert all("ts" not in harness.docs[k] for k in harness.docs)  # no NTP here: uptime only (§3)
    ups = [harness.docs[(DEVICE, ep, seq)]["up"] for ep, seq in pairs]
    assert ups == sorted(ups)
    fb = fw.of("fb")
    assert len(fb) == 7 and max(e["lat"] for e in fb) < 100  # feedback within 100 ms of the press
    fw.wait_for("led")  # and the LED goes off again, even with no thank-you time
    st = fw.status()
    assert (st["pending"], st["segments"], st["dropped"], st["overflow"]) == (0, 0, 0, 0)
    assert st["pubacks"] >= 8  # 7 events and the retained status, each at QoS 1 with its PUBACK
    # heartbeat at connect, verified by the harness; retained status carries the epoch
    harness.wait_until(lambda: bool(harness.heartbeats))
    hb = harness.heartbeats[0]
    assert hb["body"]["clock"] == "unsynced" and hb["body"]["fw"] == "1.0.0"
    assert harness.status[DEVICE] == {"online": True, "ep": fw.epoch, "fw": "1.0.0"}
    _assert_exactly_once(harness, fw)


def test_heartbeats_are_periodic_and_report_the_last_seq(harness: AckHarness, make_box: BoxFactory) -> None:
    fw = make_box(hb_s=1).start()
    fw.wait_for("online")
    fw.press(3)
    fw.press(1)
    harness.wait_until(lambda: any(h["seq"] == 2 and h["body"]["outbox"] == 0 for h in harness.heartbeats),
                       what="a heartbeat after the presses")
    ups = [h["up"] for h in harness.heartbeats]
    assert len(ups) >= 2 and ups == sorted(ups) and all(h["ep"] == fw.epoch for h in harness.heartbeats)
    assert all(0 < h["body"]["mem"] < 128 * 1024 and "rssi" not in h["body"] for h in harness.heartbeats)


def test_thank_you_state_flags_presses_and_feedback_is_immediate(harness: AckHarness,
                                                                  make_box: BoxFactory) -> None:
    fw = make_box(thanks_ms=1500).start()
    fw.wait_for("online")
    first = fw.press(4)
    mashed = [fw.press(4), fw.press(1)]
    time.sleep(1.7)
    later = fw.press(3)
    harness.wait_stored(_keys([first, *mashed, later]))
    flags = [harness.docs[(DEVICE, *p)]["body"].get("during_thanks") for p in (first, *mashed, later)]
    assert flags == [None, True, True, None]
    fb = fw.of("fb")
    assert [e["flag"] for e in fb] == [0, 1, 1, 0] and max(e["lat"] for e in fb) < 100
    assert fw.of("led")  # the thank-you state ended and said so


@pytest.mark.slow
def test_broker_killed_and_restarted_mid_run(mosquitto: Mosquitto, harness: AckHarness,
                                             make_box: BoxFactory) -> None:
    fw = make_box().start()
    fw.wait_for("online")
    before = [fw.press(v) for v in (1, 2, 3)]
    harness.wait_stored(_keys(before))
    fw.wait_drained()
    mosquitto.kill()
    fw.wait_for("offline")
    during = [fw.press(v) for v in (4, 3, 2, 1)]  # on flash only: nobody to send them to
    assert fw.status()["pending"] == 4
    time.sleep(1.5)  # a few failed reconnects with backoff
    mosquitto.start()  # same port, empty: no sessions, no retained messages, no subscriptions
    fw.wait_for("online", after=1, timeout=15)
    harness.wait_stored(_keys(before + during), timeout=20)
    fw.wait_drained()
    after = [fw.press(4)]
    harness.wait_stored(_keys(after))
    assert [s for _e, s in before + during + after] == list(range(1, 9))
    assert fw.wait_drained()["connects"] >= 2
    # the subscriptions were renewed on the new broker: acks flowed above, and a config arrives
    harness.publish_config(DEVICE, rev=2, levels=3)
    fw.wait_for("cfg", where=lambda e: e["rev"] == 2)
    _assert_exactly_once(harness, fw)


@pytest.mark.slow
def test_power_cut_mid_run_loses_nothing_and_never_reuses_a_number(harness: AckHarness,
                                                                    make_box: BoxFactory) -> None:
    fw = make_box().start()
    fw.wait_for("online")
    harness.acking = False  # keep events unacked on flash when the power goes
    first = [fw.press(v) for v in (1, 2, 3)]
    harness.wait_stored(_keys(first))
    fw.kill()
    harness.wait_until(lambda: harness.status.get(DEVICE) == {"online": False}, what="last will")
    fw.start()
    assert fw.boots[-1]["pending"] == 3 and fw.epoch == first[0][0] + 1
    harness.acking = True
    second = [fw.press(4), fw.press(1)]
    assert second == [(fw.epoch, 1), (fw.epoch, 2)]  # a new epoch, seq from 1 (§3)
    harness.wait_stored(_keys(first + second))
    fw.wait_drained()
    _assert_exactly_once(harness, fw)


@pytest.mark.slow
def test_repeated_power_cuts_during_a_burst_store_every_persisted_press_once(
        harness: AckHarness, make_box: BoxFactory) -> None:
    fw = make_box(window=8).start()
    rng = random.Random(20261122)
    kills = 4
    for _ in range(kills):
        fw.wait_for("online", after=len(fw.boots) - 1)
        fw.burst(400, every_ms=2)
        time.sleep(rng.uniform(0.2, 0.6))  # somewhere in the middle of writing and sending
        fw.kill()
        fw.start()
    fw.wait_for("online", after=len(fw.boots) - 1)
    fw.burst(50, every_ms=1)
    last = fw.epoch
    fw.wait_for("evt", where=lambda e: (e["ep"], e["seq"]) == (last, 50), timeout=20)
    # "evt" is printed just after the flash write: a press can be on flash without its line when
    # the power went in between. Those are recovered and delivered too; nothing printed is missing.
    printed = {(DEVICE, int(e["ep"]), int(e["seq"])) for e in fw.of("evt")}
    assert len(printed) == len(fw.of("evt")), "the firmware assigned one (ep, seq) twice"
    harness.wait_stored(printed, timeout=60)
    fw.wait_drained(timeout=30)
    stored = set(harness.stored)
    assert len(stored - printed) <= kills
    epochs = [b["ep"] for b in fw.boots]
    assert epochs == list(range(epochs[0], epochs[0] + kills + 1))
    for ep in epochs:  # within each epoch 1..n without a gap: every assigned number was delivered
        seqs = sorted(s for _d, e, s in stored if e == ep)
        assert seqs == list(range(1, len(seqs) + 1)) and seqs, ep
    assert harness.conflicts == [] and harness.refused == []


@pytest.mark.slow
def test_network_cut_silently_for_a_long_time(mosquitto: Mosquitto, harness: AckHarness,
                                              make_box: BoxFactory) -> None:
    proxy = CuttableProxy(mosquitto.port)
    try:
        fw = make_box(port=proxy.port).start()
        fw.wait_for("online")
        before = [fw.press(2)]
        harness.wait_stored(_keys(before))
        proxy.cut()  # no FIN, no RST: only the keepalive can tell
        during = []
        t_end = time.monotonic() + 20  # "minutes", compressed by keepalive 2 s and backoff <= 1 s
        while time.monotonic() < t_end:
            during.append(fw.press(random.randint(1, 4)))
            time.sleep(0.5)
        offline = fw.of("offline")
        # noticed by the keepalive timers: no PINGRESP, or no PUBACK for an event sent into the cut
        assert offline and ("PINGRESP" in offline[0]["why"] or "PUBACK" in offline[0]["why"])
        assert len(offline) >= 3  # and kept trying (CONNACK never came through the cut)
        assert not set(_keys(during)) & set(harness.stored)
        proxy.restore()
        harness.wait_stored(_keys(before + during), timeout=20)
        fw.wait_drained()
        _assert_exactly_once(harness, fw)
    finally:
        proxy.close()


def test_wifi_loss_closes_the_link_and_its_return_reopens_it(harness: AckHarness,
                                                              make_box: BoxFactory) -> None:
    fw = make_box(wifi_retry_ms=100, backoff_max_ms=800).start()
    fw.wait_for("online")
    fw.net(False)
    fw.wait_for("offline", where=lambda e: "Wi-Fi" in e["why"])
    harness.wait_until(lambda: harness.status.get(DEVICE) == {"online": False}, what="last will")
    pair = fw.press(1)
    t0 = time.monotonic()
    fw.wait_for("wifi_start", after=4, timeout=5)  # association retried with backoff ...
    took = time.monotonic() - t0
    assert 100 * 0.75 * 7 / 1000 <= took <= 3  # ~ 0 + 100 + 200 + 400 (+/- 25 % jitter) + 800 cap
    fw.net(True)
    fw.wait_for("online", after=1)
    harness.wait_stored(_keys([pair]))


@pytest.mark.slow
def test_silent_server_gets_resends_with_backoff_until_it_acks(harness: AckHarness,
                                                                make_box: BoxFactory) -> None:
    fw = make_box(resend_ms=500, resend_max_ms=2000).start()
    fw.wait_for("online")
    harness.acking = False
    pairs = [fw.press(v) for v in (1, 2)]
    time.sleep(4.5)  # re-sends at ~0.5, 1.5, 3.5 s (the wait doubles)
    arrivals = [k for k in harness.arrivals if k in _keys(pairs)]
    assert 6 <= len(arrivals) <= 10, arrivals
    st = fw.status()
    assert st["pending"] == 2 and 2 <= st["resends"] <= 4
    harness.acking = True
    fw.wait_drained()
    assert set(harness.stored) == _keys(pairs)
    _assert_exactly_once(harness, fw)


def test_last_will_and_retained_status(harness: AckHarness, make_box: BoxFactory) -> None:
    fw = make_box().start()
    fw.wait_for("online")
    harness.wait_until(lambda: harness.status.get(DEVICE, {}).get("ep") == fw.epoch, what="online status")
    fw.kill()
    harness.wait_until(lambda: harness.status.get(DEVICE) == {"online": False}, what="last will")
    fw.start()
    harness.wait_until(lambda: harness.status.get(DEVICE, {}).get("ep") == fw.epoch, what="back online")
    fw.stop()  # orderly: offline published by the firmware itself, then DISCONNECT (no will)
    harness.wait_until(lambda: harness.status.get(DEVICE) == {"online": False}, what="offline status")
    assert fw.of("bye")


def test_keepalive_pings_keep_an_idle_link(harness: AckHarness, make_box: BoxFactory) -> None:
    fw = make_box(keepalive_s=1, hb_s=60).start()
    fw.wait_for("online")
    time.sleep(3.5)  # idle for 3.5 keepalives: the broker would drop us after 1.5 without pings
    st = fw.status()
    assert st["pings"] >= 3 and st["pongs"] >= 3 and st["connects"] == 1


def test_oversized_message_is_skipped_and_the_link_survives(harness: AckHarness,
                                                            make_box: BoxFactory) -> None:
    fw = make_box().start()
    fw.wait_for("online")
    fw.wait_for("subscribed")  # a message published before would reach nobody
    harness.client.publish(f"motcua/v1/dev/{DEVICE}/ack", b"x" * 6000, qos=1).wait_for_publish(5)
    harness.client.publish(f"motcua/v1/dev/{DEVICE}/ack", b'{"not":"signed"}', qos=1).wait_for_publish(5)
    fw.wait_for("refused")
    pair = fw.press(2)
    harness.wait_stored(_keys([pair]))
    fw.wait_drained()
    st = fw.status()
    assert st["discarded"] == 1 and st["bad_msgs"] == 1 and st["connects"] == 1


def test_messages_up_to_the_protocol_limit_are_taken(harness: AckHarness, make_box: BoxFactory) -> None:
    # Larger than the resident receive buffer (~1 KB), within the protocol's 4096 bytes: each gets a
    # buffer of its own while it is handled (mqtt.py), then the box is back on the resident one.
    fw = make_box(display=True).start()
    fw.wait_for("subscribed")
    official = {"code": "CB-0042", "name": "Nguyễn Thị Lan", "post": "Công chức Tư pháp - Hộ tịch " * 95}
    payload = harness.publish_config(DEVICE, rev=4, levels=5, official=official,
                                     labels=["Rất không hài lòng với cán bộ"] * 5)
    assert 3800 < len(payload) <= 4096
    fw.wait_for("cfg", where=lambda e: e["rev"] == 4 and e["levels"] == 5)
    fw.wait_for("display", where=lambda e: "Nguyen Thi Lan" in e["lines"])
    # an ack of the server's largest size (server/ingest: 100 entries), naming three real events
    harness.acking = False
    pairs = [fw.press(v) for v in (1, 2, 3)]
    harness.wait_stored(_keys(pairs))
    ep = pairs[0][0]
    acks = [(ep, 100_000 + k, "dup") for k in range(97)] + [(e, s, "ok") for e, s in pairs]
    ack = encode_ack(harness.secrets[DEVICE], dev=DEVICE, ts=int(time.time() * 1000), acks=acks)
    assert len(ack) > 1500
    harness.client.publish(f"motcua/v1/dev/{DEVICE}/ack", ack, qos=1).wait_for_publish(5)
    st = fw.wait_drained()
    assert st["discarded"] == 0 and st["bad_msgs"] == 0 and st["acked"] == 3
    # and the link goes on as before, on the resident buffer
    harness.acking = True
    harness.wait_stored(_keys([fw.press(4)]))
    fw.wait_drained()


def test_config_is_verified_applied_persisted_and_shown(harness: AckHarness, make_box: BoxFactory,
                                                        mosquitto: Mosquitto) -> None:
    fw = make_box(display=True).start()
    fw.wait_for("online")
    official = {"code": "CB-0042", "name": "Nguyễn Thị Lan", "post": "Công chức Tư pháp - Hộ tịch"}
    harness.publish_config(DEVICE, rev=3, levels=5, official=official)
    fw.wait_for("cfg", where=lambda e: e["rev"] == 3 and e["levels"] == 5)
    fw.wait_for("display", where=lambda e: "Nguyen Thi Lan" in e["lines"])
    five = fw.press(5)
    harness.wait_stored(_keys([five]))
    assert harness.docs[(DEVICE, *five)]["body"] == {"value": 5, "levels": 5}
    # refused: signed with another key; an older rev; a scale this box has no buttons for
    harness.publish_config(DEVICE, rev=9, levels=3, secret=hashlib.sha256(b"other").digest())
    fw.wait_for("refused", where=lambda e: e["code"] == "bad_signature")
    harness.publish_config(DEVICE, rev=2, levels=3)
    harness.publish_config(DEVICE, rev=10, levels=7)
    fw.wait_for("refused", where=lambda e: e["code"] == "schema")
    assert fw.status()["levels"] == 5 and fw.status()["cfg_rev"] == 3
    # after a power cut with no broker at all, the box still shows who is serving
    mosquitto.kill()
    fw.restart()
    assert fw.boots[-1]["cfg_rev"] == 3 and fw.boots[-1]["levels"] == 5
    fw.wait_for("display", after=len(fw.of("display")) - 1,
                where=lambda e: "Nguyen Thi Lan" in e["lines"] and "offline" in e["lines"][7])


@pytest.mark.slow
def test_events_carry_uptime_until_ntp_answers_then_wall_time(harness: AckHarness,
                                                              make_box: BoxFactory) -> None:
    ntp = SntpServer(offset_s=3600)
    try:
        ntp.answering = False
        fw = make_box(ntp_host="127.0.0.1", ntp_port=ntp.port, ntp_resync_s=2, hb_s=1).start()
        fw.wait_for("online")
        unsynced = fw.press(1)
        ntp.answering = True
        fw.wait_for("clock", timeout=15)
        synced = fw.press(4)
        harness.wait_stored(_keys([unsynced, synced]))
        assert "ts" not in harness.docs[(DEVICE, *unsynced)]
        ts = harness.docs[(DEVICE, *synced)]["ts"]
        assert abs(ts - ntp.now_ms()) < 2000  # the server's clock (an hour off this machine's)
        harness.wait_until(lambda: any(h["body"]["clock"] == "synced" and "ts" in h
                                       for h in harness.heartbeats), what="a synced heartbeat")
        n = ntp.requests
        time.sleep(2.5)
        assert ntp.requests > n  # periodic re-sync
        assert fw.status()["ntp"] >= 2
    finally:
        ntp.close()
