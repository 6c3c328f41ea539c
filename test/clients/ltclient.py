#!/usr/bin/python3
"""Seed or download one torrent with python3-libtorrent, tracker only.

Usage: /usr/bin/python3 ltclient.py seed|leech TORRENT SAVE_DIR LISTEN_PORT [TIMEOUT_SECONDS]

DHT, local peer discovery, PEX (and every other default plugin), UPnP and
NAT-PMP are off, and the session listens only on 127.0.0.1, so the tracker is
the only way to find peers. Peers all share 127.0.0.1, so multiple
connections per IP must be allowed.

On stdout it prints "ANNOUNCED" after the first successful tracker reply and
"SEEDING" once it has the whole torrent (hash-checked by libtorrent). A leecher
then exits 0; a seeder runs until it is killed or the timeout (default 60 s)
passes. Exit status 2 means the timeout passed, 3 a torrent error or a seeder
whose data does not check. uTP is off: the transport does not matter to a
tracker test, and TCP alone avoids waiting for uTP connect time-outs (3 s each)
to peers the tracker lists that are gone or are this client itself.
Alerts and progress go to stderr.
"""
import sys
import time

import libtorrent as lt


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    mode, torrent, save_dir, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    if mode not in ("seed", "leech"):
        sys.exit(__doc__)

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
