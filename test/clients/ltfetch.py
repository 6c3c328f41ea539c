#!/usr/bin/python3
"""Download one torrent with python3-libtorrent, then seed it until killed.

Usage: /usr/bin/python3 ltfetch.py TORRENT SAVE_DIR LISTEN_PORT [TIMEOUT_SECONDS]

Unlike ltclient.py, the torrent's web seeds (url-list, BEP 19) are used, so
the download may come from them alone; once complete (hash-checked by
libtorrent) it prints "DONE" and goes on seeding to peers the tracker
sends, until it is killed or the timeout (default 300 s) passes. DHT, local
peer discovery, PEX, UPnP and NAT-PMP are off and it listens on 127.0.0.1
only. Exit status 2 means the timeout passed before the download was
complete, 3 a torrent error.
"""
import sys
import time

import libtorrent as lt


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def main():
    torrent, save_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 300.0
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
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.peer_notification,
        "user_agent": "warden-e2e/libtorrent-" + lt.__version__,
    }
    ses = lt.session(settings, 0)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_dir
    atp.flags = (atp.flags & ~lt.torrent_flags.paused & ~lt.torrent_flags.auto_managed) \
        | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    h = ses.add_torrent(atp)
    h.resume()
    deadline = time.monotonic() + timeout
    done = False
    last = 0.0
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_error_alert):
                log("torrent error:", a.message())
                sys.exit(3)
            if isinstance(a, (lt.stats_alert, lt.block_finished_alert, lt.block_downloading_alert,
                              lt.piece_finished_alert)):
                continue
            log(type(a).__name__, a.message())
        st = h.status()
        now = time.monotonic()
        if now - last > 1:
            last = now
            log("state=%s progress=%.3f peers=%d web=%s" % (st.state, st.progress, st.num_peers, h.url_seeds()))
        if st.is_seeding and not done:
            done = True
            print("DONE", flush=True)
    if not done:
        log("timeout after %.0fs" % timeout)
        sys.exit(2)


if __name__ == "__main__":
    main()
