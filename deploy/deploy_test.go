// Package deploy_test checks the deployment files beside it: the systemd
// unit warden.service and the kernel settings in sysctl.d/60-warden.conf,
// plus the warden.toml example in docs/deploy.md. They are text for
// operators, and systemd and sysctl skip a misspelt key with a warning
// nobody reads, so a typo would quietly drop a limit or a protection. These
// tests read the files as text and hold them to what docs/deploy.md
// promises. Where systemd-analyze is installed, it checks the unit too.
package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"warden/internal/config"
)

const (
	unitPath   = "warden.service"
	sysctlPath = "sysctl.d/60-warden.conf"
	docsPath   = "../docs/deploy.md"
)

// entry is one key=value line of a unit file.
type entry struct {
	section, key, value string
	line                int
}

// unit is a parsed unit file.
type unit struct {
	entries []entry
}

// values returns every value of key in section, in file order (a key may
// repeat, as Environment= does).
func (u *unit) values(section, key string) []string {
	var vs []string
	for _, e := range u.entries {
		if e.section == section && e.key == key {
			vs = append(vs, e.value)
		}
	}
	return vs
}

// service returns the value of a [Service] key that must appear exactly
// once, failing the test otherwise.
func (u *unit) service(t *testing.T, key string) string {
	t.Helper()
	vs := u.values("Service", key)
	if len(vs) != 1 {
		t.Fatalf("%s: [Service] %s= appears %d times, want once", unitPath, key, len(vs))
	}
	return vs[0]
}

// env returns the value that Environment= lines give name, and whether
// one does.
func (u *unit) env(name string) (string, bool) {
	val, found := "", false
	for _, v := range u.values("Service", "Environment") {
		for _, assign := range strings.Fields(v) { // no quoted values in our unit
			if k, x, ok := strings.Cut(assign, "="); ok && k == name {
				val, found = x, true
			}
		}
	}
	return val, found
}

// parseUnit reads a unit file the way systemd does, as far as this file
// needs: [Section] headers, key=value lines, comments starting with # or ;,
// and lines continued by a trailing backslash.
func parseUnit(t *testing.T, path string) *unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := &unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, start := strings.TrimSpace(sc.Text()), n
		for strings.HasSuffix(line, `\`) && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", path, start, line)
			}
			section = line[1 : len(line)-1]
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: want key=value inside a section, got %q", path, start, line)
			}
			u.entries = append(u.entries, entry{section, strings.TrimSpace(key), strings.TrimSpace(value), start})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// knownKeys are the keys the unit may use, by section. systemd would ignore
// anything else with a warning, so an unknown key here is most likely a
// typo that silently dropped a setting. Add a key here when the unit needs
// a new one.
var knownKeys = map[string][]string{
	"Unit": {"Description", "Documentation", "After", "Before", "Wants", "Requires",
		"StartLimitIntervalSec", "StartLimitBurst"},
	"Install": {"WantedBy", "Alias"},
	"Service": {
		"Type", "ExecStart", "ExecReload", "Restart", "RestartSec", "KillSignal", "KillMode",
		"TimeoutStartSec", "TimeoutStopSec", "SyslogIdentifier",
		"DynamicUser", "User", "Group", "StateDirectory", "StateDirectoryMode",
		"ConfigurationDirectory", "UMask", "Environment",
		"MemoryHigh", "MemoryMax", "MemorySwapMax", "OOMScoreAdjust", "CPUQuota", "CPUWeight",
		"LimitNOFILE", "TasksMax",
		"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
		"PrivateMounts", "ProtectProc", "ProtectKernelTunables", "ProtectKernelModules",
		"ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
		"RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
		"LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures",
		"SystemCallFilter", "SystemCallErrorNumber", "CapabilityBoundingSet", "AmbientCapabilities",
	},
}

// repeatable are the keys whose every line counts; any other key given
// twice is a mistake, since only its last value would take effect.
var repeatable = []string{"Environment", "SystemCallFilter", "After", "Wants", "Requires", "Before"}

func TestUnitKeys(t *testing.T) {
	u := parseUnit(t, unitPath)
	seen := map[string]int{}
	for _, e := range u.entries {
		known, ok := knownKeys[e.section]
		if !ok {
			t.Errorf("%s:%d: unknown section [%s]", unitPath, e.line, e.section)
			continue
		}
		if !slices.Contains(known, e.key) {
			t.Errorf("%s:%d: unknown key %s= in [%s]: a typo? (systemd ignores it with a warning)", unitPath, e.line, e.key, e.section)
		}
		id := e.section + "/" + e.key
		if prev, dup := seen[id]; dup && !slices.Contains(repeatable, e.key) {
			t.Errorf("%s:%d: %s= already set at line %d; only the last would count", unitPath, e.line, e.key, prev)
		}
		seen[id] = e.line
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if !slices.ContainsFunc(u.entries, func(e entry) bool { return e.section == s }) {
			t.Errorf("%s: no [%s] section", unitPath, s)
		}
	}
}

func TestUnitExecStart(t *testing.T) {
	u := parseUnit(t, unitPath)
	args := strings.Fields(u.service(t, "ExecStart"))
	if len(args) < 2 || !filepath.IsAbs(args[0]) || filepath.Base(args[0]) != "warden" || args[1] != "serve" {
		t.Fatalf("ExecStart=%s: want /absolute/path/warden serve …", strings.Join(args, " "))
	}
	flags := map[string]string{}
	for i := 2; i < len(args); i++ {
		name, val, ok := strings.Cut(args[i], "=")
		if !ok && i+1 < len(args) {
			i++
			val = args[i]
		}
		flags[strings.TrimLeft(name, "-")] = val
	}
	if got := flags["config"]; got != "/etc/warden/warden.toml" {
		t.Errorf("ExecStart: --config %q, want /etc/warden/warden.toml", got)
	}
	state := u.service(t, "StateDirectory")
	if got, want := flags["data"], "/var/lib/"+state; got != want {
		t.Errorf("ExecStart: --data %q, want %q (the StateDirectory=%s systemd creates)", got, want, state)
	}
}

func TestUnitValues(t *testing.T) {
	u := parseUnit(t, unitPath)
	tests := []struct {
		key, want string
	}{
		{"Type", "exec"},
		{"DynamicUser", "yes"},
		{"StateDirectory", "warden"},
		{"StateDirectoryMode", "0700"},
		{"UMask", "0077"},
		{"Restart", "on-failure"},
		{"KillSignal", "SIGTERM"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"ProtectClock", "yes"},
		{"ProtectHostname", "yes"},
		{"RestrictNamespaces", "yes"},
		{"RestrictRealtime", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
	}
	for _, tt := range tests {
		if got := u.values("Service", tt.key); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("[Service] %s=%q, want %s once", tt.key, got, tt.want)
		}
	}
	// Go reads /proc/sys/net/core/somaxconn for its listen backlog and
	// falls back to 128 when it cannot, which would undo the sysctl file.
	if vs := u.values("Service", "ProcSubset"); slices.Contains(vs, "pid") {
		t.Error("ProcSubset=pid hides /proc/sys/net/core/somaxconn from Go")
	}
}

func TestUnitTimes(t *testing.T) {
	u := parseUnit(t, unitPath)
	restart, err := parseTimespan(u.service(t, "RestartSec"))
	if err != nil || restart < time.Second {
		t.Errorf("RestartSec=%s (%v): want at least 1s, so a crash loop does not spin", u.service(t, "RestartSec"), err)
	}
	stop, err := parseTimespan(u.service(t, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	// warden needs up to http.shutdown_timeout to finish requests in flight.
	if grace := config.Default().HTTP.ShutdownTimeout; stop <= grace {
		t.Errorf("TimeoutStopSec=%v, want more than http.shutdown_timeout (%v)", stop, grace)
	}
	if got := u.values("Unit", "StartLimitIntervalSec"); !slices.Equal(got, []string{"0"}) {
		t.Errorf("[Unit] StartLimitIntervalSec=%v, want 0: never stop restarting a tracker", got)
	}
}

func TestUnitResources(t *testing.T) {
	u := parseUnit(t, unitPath)

	memMax, err := parseSystemdBytes(u.service(t, "MemoryMax"))
	if err != nil {
		t.Fatalf("MemoryMax: %v", err)
	}
	memHigh, err := parseSystemdBytes(u.service(t, "MemoryHigh"))
	if err != nil {
		t.Fatalf("MemoryHigh: %v", err)
	}
	goLimitText, ok := u.env("GOMEMLIMIT")
	if !ok {
		t.Fatal("no Environment=GOMEMLIMIT=…: Go's GC would not know the memory limit")
	}
	goLimit, err := parseGoBytes(goLimitText)
	if err != nil {
		t.Fatalf("GOMEMLIMIT: %v", err)
	}
	if !(goLimit < memHigh && memHigh < memMax) {
		t.Errorf("want GOMEMLIMIT (%d) < MemoryHigh (%d) < MemoryMax (%d)", goLimit, memHigh, memMax)
	}
	if memMax < 256<<20 {
		t.Errorf("MemoryMax=%d bytes: too little for the swarm, the socket buffers and the registry", memMax)
	}
	if got := u.service(t, "MemorySwapMax"); got != "0" {
		t.Errorf("MemorySwapMax=%s, want 0", got)
	}

	quota := u.service(t, "CPUQuota")
	pct, err := strconv.Atoi(strings.TrimSuffix(quota, "%"))
	if err != nil || !strings.HasSuffix(quota, "%") || pct <= 0 {
		t.Fatalf("CPUQuota=%s: want a positive percentage", quota)
	}
	procsText, ok := u.env("GOMAXPROCS")
	if !ok {
		t.Fatal("no Environment=GOMAXPROCS=…")
	}
	procs, err := strconv.Atoi(procsText)
	if want := (pct + 99) / 100; err != nil || procs != want {
		t.Errorf("GOMAXPROCS=%s, want %d: CPUQuota=%s rounded up to whole CPUs", procsText, want, quota)
	}

	nofile := u.service(t, "LimitNOFILE")
	soft, hard, split := strings.Cut(nofile, ":")
	if split && soft != hard {
		t.Errorf("LimitNOFILE=%s: want soft = hard, so the Go runtime has no limit to raise", nofile)
	}
	if n, err := strconv.Atoi(soft); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%s: want a number of at least 65536", nofile)
	}

	if n, err := strconv.Atoi(u.service(t, "TasksMax")); err != nil || n < 64 {
		t.Errorf("TasksMax=%s: want a number of at least 64 (warden runs about 20 threads)", u.service(t, "TasksMax"))
	}
}

func TestUnitSandbox(t *testing.T) {
	u := parseUnit(t, unitPath)

	filters := u.values("Service", "SystemCallFilter")
	if !slices.Contains(filters, "@system-service") {
		t.Errorf("SystemCallFilter=%q: want @system-service", filters)
	}
	denied := false
	for _, f := range filters {
		if rest, ok := strings.CutPrefix(f, "~"); ok {
			groups := strings.Fields(rest)
			denied = slices.Contains(groups, "@privileged") && slices.Contains(groups, "@resources")
		}
	}
	if !denied {
		t.Errorf("SystemCallFilter=%q: want a ~@privileged @resources line", filters)
	}

	families := strings.Fields(u.service(t, "RestrictAddressFamilies"))
	if !slices.Contains(families, "AF_INET") || !slices.Contains(families, "AF_INET6") {
		t.Errorf("RestrictAddressFamilies=%v: want AF_INET and AF_INET6", families)
	}
	for _, f := range families {
		if !slices.Contains([]string{"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}, f) {
			t.Errorf("RestrictAddressFamilies: %s is more than a tracker needs (and ~ lists are deny lists)", f)
		}
	}

	// No capability at all, unless one binds a port below 1024.
	bounding := u.service(t, "CapabilityBoundingSet")
	ambient := u.service(t, "AmbientCapabilities")
	switch {
	case ambient == "" && bounding == "":
	case ambient == "CAP_NET_BIND_SERVICE" && bounding == "CAP_NET_BIND_SERVICE":
	default:
		t.Errorf("CapabilityBoundingSet=%q AmbientCapabilities=%q: want both empty, or both CAP_NET_BIND_SERVICE", bounding, ambient)
	}
}

// TestUnitSystemdAnalyze asks systemd itself, where it is installed: verify
// reports bad values that TestUnitValues cannot know about, and security
// scores the sandbox. Neither needs systemd to be running.
func TestUnitSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// verify wants ExecStart's program to exist: use this test binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	copyText := regexp.MustCompile(`(?m)^ExecStart=\S+`).ReplaceAllLiteralString(string(text), "ExecStart="+self)
	path := filepath.Join(t.TempDir(), "warden.service")
	if err := os.WriteFile(path, []byte(copyText), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Only lines about our file count: verify also loads the host's units.
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, path) {
			t.Errorf("systemd-analyze verify: %s", strings.TrimSpace(line))
		}
	}

	out, err = exec.CommandContext(ctx, analyze, "security", "--offline=yes", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Logf("systemd-analyze security --offline not available here (%v); exposure not checked", err)
		return
	}
	const maxExposure = 2.0 // systemd calls below 2.0 "OK"; the unit scores about 1.4
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > maxExposure {
		t.Errorf("systemd-analyze security: exposure %s, want at most %.1f\n%s", m[1], maxExposure, out)
	}
}

// sysctlLine is one setting: `name = value`, optionally prefixed with "-"
// (ignore a failure to set it). The name has at least three parts.
var sysctlLine = regexp.MustCompile(`^-?([a-z0-9_]+(?:\.[a-z0-9_]+){2,}) = (\S+)$`)

// knownSysctls are the settings the file may hold, each with the range that
// makes sense for a tracker host. Add an entry when the file needs a new
// setting.
var knownSysctls = map[string]func(v int64) error{
	"net.ipv4.tcp_syncookies":        exactly(1),
	"net.ipv4.tcp_max_syn_backlog":   between(1024, 1<<20),
	"net.core.somaxconn":             between(4096, 65535), // 4096 is Linux's default since 5.4
	"net.ipv4.tcp_synack_retries":    between(1, 5),        // 5 is the default
	"net.core.rmem_max":              between(212992, 1<<30),
	"net.core.wmem_max":              between(212992, 1<<30),
	"net.core.rmem_default":          between(212992, 1<<30),
	"net.core.wmem_default":          between(212992, 1<<30),
	"net.core.netdev_max_backlog":    between(1000, 1<<20),
	"net.netfilter.nf_conntrack_max": between(65536, 1<<24),
}

func exactly(want int64) func(int64) error {
	return func(v int64) error {
		if v != want {
			return fmt.Errorf("want %d", want)
		}
		return nil
	}
}

func between(lo, hi int64) func(int64) error {
	return func(v int64) error {
		if v < lo || v > hi {
			return fmt.Errorf("want %d to %d", lo, hi)
		}
		return nil
	}
}

// parseSysctl returns the settings of a sysctl.d file, failing the test on
// any line that is not a comment, blank, or a well-formed known setting.
func parseSysctl(t *testing.T, path string) map[string]int64 {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]int64{}
	n := 0
	for line := range strings.Lines(string(text)) {
		n++
		line = strings.TrimRight(line, "\n")
		if s := strings.TrimSpace(line); s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		m := sysctlLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: %q is not `a.b.c = value`", path, n, line)
			continue
		}
		name, value := m[1], m[2]
		check, ok := knownSysctls[name]
		if !ok {
			t.Errorf("%s:%d: unknown setting %s: a typo? (add it to knownSysctls if not)", path, n, name)
			continue
		}
		if _, dup := settings[name]; dup {
			t.Errorf("%s:%d: %s set twice", path, n, name)
		}
		v, err := strconv.ParseInt(value, 10, 64)
		if err == nil {
			err = check(v)
		}
		if err != nil {
			t.Errorf("%s:%d: %s = %s: %v", path, n, name, value, err)
		}
		settings[name] = v
	}
	return settings
}

func TestSysctl(t *testing.T) {
	s := parseSysctl(t, sysctlPath)
	for _, name := range []string{"net.ipv4.tcp_syncookies", "net.core.somaxconn", "net.core.rmem_max"} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s: %s is not set", sysctlPath, name)
		}
	}
	if def, max := s["net.core.rmem_default"], s["net.core.rmem_max"]; def > max {
		t.Errorf("net.core.rmem_default (%d) > net.core.rmem_max (%d)", def, max)
	}
	if def, max := s["net.core.wmem_default"], s["net.core.wmem_max"]; max != 0 && def > max {
		t.Errorf("net.core.wmem_default (%d) > net.core.wmem_max (%d)", def, max)
	}
}

func TestSysctlLine(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
	}{
		{"net.core.somaxconn = 8192", true},
		{"-net.netfilter.nf_conntrack_max = 262144", true},
		{"net.core.somaxconn=8192", false},   // this file's style: spaces around =
		{"net/core/somaxconn = 8192", false}, // slashes are legal for sysctl, not here
		{"somaxconn = 8192", false},
		{"net.core.somaxconn = ", false},
		{"net.core.somaxconn = 1 2", false},
	}
	for _, tt := range tests {
		if got := sysctlLine.MatchString(tt.line); got != tt.ok {
			t.Errorf("sysctlLine.MatchString(%q) = %v, want %v", tt.line, got, tt.ok)
		}
	}
}

// TestDocsConfig loads every TOML block of docs/deploy.md as warden would,
// so the guide cannot drift from the config file format, and checks that
// it fits the unit and the sysctl file.
func TestDocsConfig(t *testing.T) {
	text, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```toml\n(.*?)^```").FindAllSubmatch(text, -1)
	if len(blocks) == 0 {
		t.Fatalf("%s: no ```toml block", docsPath)
	}
	sysctl := parseSysctl(t, sysctlPath)
	for i, b := range blocks {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("warden-%d.toml", i))
		if err := os.WriteFile(path, b[1], 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Errorf("%s: toml block %d: %v", docsPath, i+1, err)
			continue
		}
		if n := int64(cfg.UDP.SocketBufferBytes); n > sysctl["net.core.rmem_max"] || n > sysctl["net.core.wmem_max"] {
			t.Errorf("%s: udp.socket_buffer_bytes = %d exceeds net.core.rmem_max or wmem_max in %s: the kernel would cap it silently",
				docsPath, n, sysctlPath)
		}
		if ap, err := netip.ParseAddrPort(cfg.Admin.Listen); err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("%s: admin.listen = %q, want a loopback address", docsPath, cfg.Admin.Listen)
		}
	}
}

// parseSystemdBytes parses a systemd size such as 1G or 900M (powers of
// 1024). Percentages and "infinity" are refused: the unit states bytes.
func parseSystemdBytes(s string) (int64, error) {
	mult := int64(1)
	if s != "" {
		if i := strings.IndexByte("KMGT", s[len(s)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 1G", s)
	}
	return n * mult, nil
}

// parseGoBytes parses a GOMEMLIMIT value: a number with an optional B,
// KiB, MiB, GiB or TiB suffix.
func parseGoBytes(s string) (int64, error) {
	mult, num := int64(1), s
	for i, suffix := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if rest, ok := strings.CutSuffix(s, suffix); ok {
			mult, num = 1<<(10*(i+1)), rest
			break
		}
	}
	if mult == 1 {
		num = strings.TrimSuffix(s, "B")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 900MiB", s)
	}
	return n * mult, nil
}

// parseTimespan parses a systemd time span such as 15s, 500ms, 1min 30s,
// or a bare number of seconds.
func parseTimespan(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	units := map[string]time.Duration{
		"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "sec": time.Second,
		"m": time.Minute, "min": time.Minute, "h": time.Hour,
	}
	part := regexp.MustCompile(`^([0-9]+)\s*([a-z]+)$`)
	var total time.Duration
	for _, f := range strings.Fields(s) {
		m := part.FindStringSubmatch(f)
		if m == nil {
			return 0, fmt.Errorf("%q is not a time span such as 15s", s)
		}
		n, _ := strconv.Atoi(m[1])
		u, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("%q: unknown unit %q", s, m[2])
		}
		total += time.Duration(n) * u
	}
	if total == 0 {
		return 0, fmt.Errorf("%q is not a time span such as 15s", s)
	}
	return total, nil
}
