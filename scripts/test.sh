#!/usr/bin/env bash
# Runs warden's whole test suite: formatting, vet, staticcheck, and every Go
# test with the race detector, including the end-to-end tests that drive
# real BitTorrent clients. Installs the Debian packages those tests need
# when they are missing (as root, or through sudo).
#
# Usage: scripts/test.sh [extra go test flags]   e.g. scripts/test.sh -short
set -euo pipefail
cd "$(dirname "$0")/.."

# The real BitTorrent clients the end-to-end tests drive.
packages=(aria2 transmission-cli python3-libtorrent qbittorrent-nox mktorrent)
# The location database and Debian's own reader of it, which internal/asn's
# reader is checked against.
packages+=(libloc-database python3-location)
# The sqlite3 shell, with which the evidence log's tests tamper with the
# log as an intruder would.
packages+=(sqlite3)
# Headless Chromium renders the HTML abuse report and screenshots it
# (test/e2e/report_test.go).
packages+=(chromium)
# hping3 sends the spoofed SYN floods the sensor's tests count
# (internal/sensor, run as root); setpriv (util-linux) drops CAP_NET_RAW
# to check the sensor's error without it.
packages+=(hping3 util-linux)
# feedparser (Debian's python3-feedparser) reads warden's RSS feeds in
# internal/feed and test/e2e (publish_test.go), as a feed reader would.
packages+=(python3-feedparser)
# promtool (Debian's prometheus package) checks warden's /metrics
# (internal/metrics, test/e2e/metrics_test.go). Only the tool is used:
# on a machine that runs services the package also starts a Prometheus
# server, which the tests neither need nor touch.
packages+=(prometheus)
missing=()
for pkg in "${packages[@]}"; do
	if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing ${missing[*]}"
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "test.sh: gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "test.sh: go vet"
go vet ./...
echo "test.sh: staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "test.sh: go test"
# The end-to-end package takes about 12 minutes under the race detector
# on a 2-core machine; the timeout leaves room for a slower one.
go test -race -count=1 -timeout 25m "$@" ./...
