#!/usr/bin/python3
"""Create a single-file v1 .torrent with python3-libtorrent.

Usage: /usr/bin/python3 mktorrent.py PAYLOAD OUT.torrent [TRACKER_URL ...]

Prints the hex v1 info hash on stdout. The info hash does not depend on the
tracker URLs (they live outside the info dict), so a caller may create the
torrent once without trackers to learn the hash, then again with them.
"""
import os
import sys

import libtorrent as lt


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    payload, out, trackers = sys.argv[1], sys.argv[2], sys.argv[3:]
    fs = lt.file_storage()
    lt.add_files(fs, payload)
    # v1 only: the e2e harness checks v1 announces (BEP 3/15) against real clients.
    ct = lt.create_torrent(fs, 256 * 1024, flags=lt.create_torrent.v1_only)
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    ct.set_creator("warden e2e")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(payload)))
    data = lt.bencode(ct.generate())
    with open(out, "wb") as f:
        f.write(data)
    ti = lt.torrent_info(out)
    print(str(ti.info_hashes().v1))


if __name__ == "__main__":
    main()
