#!/usr/bin/python3
"""Seed or download one torrent with python3-libtorrent, tracker only.

Usage: /usr/bin/python3 ltclient.py seed|leech TORRENT SAVE_DIR LISTEN_PORT [TIMEOUT_SECONDS]
           [--min-announce-interval SECONDS]

DHT, local peer discovery, PEX (and every other default plugin), UPnP and
NAT-PMP are off, and the session listens only on 127.0.0.1, so the tracker is
the only way to find peers. Peers all share 127.0.0.1, so multiple
connections per IP must be allowed.

On stdout it prints "ANNOUNCED" after the first successful tracker reply,
"TRACKER_ERROR: " and the tracker's failure message (possibly empty) each time
an announce fails, and "SEEDING" once it has the whole torrent (hash-checked
by libtorrent). A leecher then exits 0; a seeder runs until it is killed or
the timeout (default 60 s) passes. Exit status 2 means the timeout passed, 3 a torrent error or a seeder
whose data does not check. uTP is off: the transport does not matter to a
tracker test, and TCP alone avoids waiting for uTP connect time-outs (3 s each)
to peers the tracker lists that are gone or are this client itself.
Alerts and progress go to stderr.

--min-announce-interval lowers libtorrent's floor under the tracker's
interval (default 300 s), so a test can watch a client follow a short one.
"""
import argparse
import sys
import time

import libtorrent as lt


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("seed", "leech"))
    ap.add_argument("torrent")
    ap.add_argument("save_dir")
    ap.add_argument("port", type=int)
    ap.add_argument("timeout", type=float, nargs="?", default=60.0)
    ap.add_argument("--min-announce-interval", type=int, default=None)
    args = ap.parse_args()
    mode, torrent, save_dir, port, timeout = args.mode, args.torrent, args.save_dir, args.port, args.timeout

    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "allow_multiple_connections_per_ip": True,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.peer_notification
        | lt.alert.category_t.connect_notification,
        "user_agent": "warden-e2e/libtorrent-" + lt.__version__,
    }
    if args.min_announce_interval is not None:
        settings["min_announce_interval"] = args.min_announce_interval
    # flags=0: no default plugins, so no ut_pex (and no ut_metadata, smart_ban).
    ses = lt.session(settings, 0)

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_dir
    # Not paused, not auto-managed (auto-management could queue or pause it).
    atp.flags = (atp.flags & ~lt.torrent_flags.paused & ~lt.torrent_flags.auto_managed) \
        | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    h = ses.add_torrent(atp)
    h.resume()

    deadline = time.monotonic() + timeout
    announced = False
    announced_seeding = False
    last = 0.0
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_error_alert):
                log("torrent error:", a.message())
                sys.exit(3)
            if isinstance(a, lt.tracker_reply_alert) and not announced:
                announced = True
                print("ANNOUNCED", flush=True)
            if isinstance(a, lt.tracker_error_alert):
                # libtorrent 2.0.8 passes a UDP error action's text from the
                # start of the packet, so it arrives empty over udp://.
                reason = a.failure_reason().replace("\n", " ")
                print("TRACKER_ERROR: " + reason, flush=True)
            if isinstance(a, (lt.stats_alert, lt.block_finished_alert, lt.block_downloading_alert,
                              lt.piece_finished_alert)):
                continue
            log(type(a).__name__, a.message())
        st = h.status()
        now = time.monotonic()
        if now - last > 1:
            last = now
            log("state=%s progress=%.3f peers=%d seeds=%d" % (st.state, st.progress, st.num_peers, st.num_seeds))
        if st.is_seeding:
            if not announced_seeding:
                announced_seeding = True
                print("SEEDING", flush=True)
            if mode == "leech":
                log("download complete")
                return
        elif mode == "seed" and st.state not in (lt.torrent_status.checking_files,
                                                 lt.torrent_status.checking_resume_data):
            # A seeder whose files check short of 100% is misconfigured.
            if st.progress < 1.0 and st.state == lt.torrent_status.downloading:
                log("seeder is missing data: progress=%.3f" % st.progress)
                sys.exit(3)
    log("timeout after %.0fs" % timeout)
    sys.exit(2)


if __name__ == "__main__":
    main()
