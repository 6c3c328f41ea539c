// Package e2e holds end-to-end tests that run real BitTorrent clients
// (libtorrent through /usr/bin/python3, aria2, Transmission, qBittorrent)
// and warden itself as separate processes, all on loopback.
//
// The tests live in _test.go files; this file only documents the package.
// Helper scripts for the clients are in test/clients.
//
// TestRealClients seeds a random payload with one client and downloads it
// with another, once per pairing and tracker protocol (http://, udp://), and
// compares the downloaded bytes with the payload. Every client runs with DHT,
// PEX and local peer discovery off, listens only on 127.0.0.1, and keeps its
// state in fresh temporary directories, so the tracker is the only way two
// clients can find each other.
//
// TestRefusalCalmsClients runs each client against warden in allowlist mode
// on a torrent that is not registered, and on one revoked while the client
// runs, and counts at the tracker how often the client announces once
// refused. docs/clients.md reports what the clients do.
//
// TestRegistrySurvivesKill9, TestDamagedRegistryRefusesToStart and
// TestAdminAuth check the registry's durability, its refusal to start on a
// damaged file, and the admin API's guard, through the warden binary (serve
// and the registry CLI).
//
// Environment:
//
//	WARDEN_E2E_TRACKER         tracker under test in TestRealClients:
//	                           "warden" (default, built from ./cmd/warden,
//	                           with -race when the tests are) or
//	                           "opentracker" (Debian's, as a reference)
//	WARDEN_E2E_LOG_DIR         keep every process's log in this directory
//	WARDEN_E2E_REFUSAL_WINDOW  how long TestRefusalCalmsClients counts
//	                           announces after the first refusal (default
//	                           90s); longer for measurements
//	CI=true                    a missing client fails the test instead of
//	                           skipping it
//
// The suite is skipped in -short mode.
package e2e
