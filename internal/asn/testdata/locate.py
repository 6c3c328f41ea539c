# Looks up each address read from standard input (one a line) in the
# location database named by argv[1] with Debian's python3-location, and
# writes one tab-separated line per address, in the same order:
#   ADDR  NETWORK  ASN  COUNTRY   when found (ASN 0 for none)
#   ADDR  -                       when not found
#   ADDR  ERR  MESSAGE            when the lookup raised
import sys

import location

db = location.Database(sys.argv[1])
out = []
for line in sys.stdin:
    addr = line.strip()
    if not addr:
        continue
    try:
        n = db.lookup(addr)
    except Exception as e:  # reported, compared by the Go test
        out.append("%s\tERR\t%s: %s" % (addr, type(e).__name__, e))
        continue
    if n is None:
        out.append("%s\t-" % addr)
    else:
        out.append("%s\t%s\t%d\t%s" % (addr, n, n.asn or 0, n.country_code or ""))
sys.stdout.write("\n".join(out) + "\n")
