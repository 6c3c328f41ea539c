#!/usr/bin/python3
"""Make, read and check .torrent files with python3-libtorrent, as a reference.

Usage: /usr/bin/python3 lt_torrent.py < JOBS.json > RESULTS.json

JOBS is a JSON list; each job is one of
  {"op": "create", "path": P, "out": F, "piece_length": N, "mode": "hybrid"|"v2"|"v1"}
      makes F from the file or directory P as libtorrent 2.0 does, with the
      no_attributes flag (for add_files and create_torrent) and no trackers;
  {"op": "info", "file": F}
      reads F;
  {"op": "check", "file": F, "save_path": D, "timeout": S}
      adds F to a session (listening on 127.0.0.1 only, DHT, LSD, UPnP and
      NAT-PMP off) with its data in D, lets libtorrent check the files, and
      reports the progress it reached.
Each result is {"v1": hex or "", "v2": hex or "", "piece_layers": {root hex:
layer hex}} for create and info, {"progress": 0..1, "state": S, "error": E}
for check, or {"error": E} when the job failed.
"""
import json
import os
import sys
import time

import libtorrent as lt


def hashes(ti):
    ih = ti.info_hashes()
    v1 = str(ih.v1) if ih.has_v1() else ""
    v2 = str(ih.v2) if ih.has_v2() else ""
    return v1, v2


def describe(data):
    e = lt.bdecode(data)
    ti = lt.torrent_info(e)
    v1, v2 = hashes(ti)
    layers = {k.hex(): v.hex() for k, v in e.get(b"piece layers", {}).items()}
    return {"v1": v1, "v2": v2, "piece_layers": layers}


def create(job):
    flags = lt.create_torrent.no_attributes
    flags |= {"hybrid": 0, "v2": lt.create_torrent.v2_only, "v1": lt.create_torrent.v1_only}[job["mode"]]
    path = os.path.abspath(job["path"])
    fs = lt.file_storage()
    lt.add_files(fs, path, flags=lt.create_torrent.no_attributes)
    ct = lt.create_torrent(fs, job["piece_length"], flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    data = lt.bencode(ct.generate())
    with open(job["out"], "wb") as f:
        f.write(data)
    return describe(data)


def info(job):
    with open(job["file"], "rb") as f:
        return describe(f.read())


def check(job):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    }, 0)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(job["file"])
    atp.save_path = job["save_path"]
    atp.flags = (atp.flags & ~lt.torrent_flags.paused & ~lt.torrent_flags.auto_managed) \
        | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    h = ses.add_torrent(atp)
    deadline = time.monotonic() + job.get("timeout", 30)
    error = ""
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                error = a.message()
        st = h.status()
        if error or st.state not in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data):
            if st.has_metadata and st.state != lt.torrent_status.checking_files:
                break
    st = h.status()
    return {"progress": st.progress, "state": str(st.state), "error": error}


def main():
    results = []
    for job in json.load(sys.stdin):
        try:
            results.append({"create": create, "info": info, "check": check}[job["op"]](job))
        except Exception as e:  # the caller shows which job failed and why
            results.append({"error": "%s: %s" % (type(e).__name__, e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
