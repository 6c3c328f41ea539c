package report

import (
	"time"

	"warden/internal/bittorrent"
	"warden/internal/evidence"
)

// Format names the report's JSON form; it changes only by adding fields.
const Format = "warden-evidence-report/1"

// A Report is what every format renders. Its JSON form (WriteJSON) is the
// one scripts read: field names only ever get added.
type Report struct {
	Format    string    `json:"format"`
	Generated time.Time `json:"generated"`
	Period    Period    `json:"period"`
	Reporter  Reporter  `json:"reporter"`
	// Checkpoint is the latest signed checkpoint: it commits to every
	// record the report rests on.
	Checkpoint  CheckpointInfo  `json:"checkpoint"`
	Attribution AttributionInfo `json:"attribution"`
	// Episodes are the episodes of the period, each as its last record
	// says, the most requests first.
	Episodes      []Episode      `json:"episodes"`
	Sources       []Source       `json:"sources"`
	Organisations []Organisation `json:"organisations"`
	// Hashes are the info hashes asked for most, over the episodes'
	// samples.
	Hashes []Hash `json:"hashes"`
	// Actions sums what warden did over the episodes.
	Actions evidence.Actions `json:"actions"`
	// OperatorActions counts the other records of the period by kind
	// (bans, unbans, registry changes, configurations).
	OperatorActions map[string]int64 `json:"operator_actions"`
	Records         RecordCounts     `json:"records"`
	// Problems lists records that could not be used, and why: a report
	// never drops one silently.
	Problems []string `json:"problems"`

	chartTop int // sources the chart draws
}

// Period is the report's period: the bounds asked for (null when
// unbounded) and the span of the episodes in it.
type Period struct {
	Since     *time.Time `json:"since"`
	Until     *time.Time `json:"until"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
}

// Reporter says who sends the report and where that was read.
type Reporter struct {
	Org     string `json:"org"`
	Contact string `json:"contact"`
	// Email is Contact's address when it is one; XARF needs it.
	Email string `json:"email"`
	// From says where Contact came from: "option" or
	// "tracker.abuse_contact"; empty when none was found.
	From string `json:"from"`
}

// CheckpointInfo is the latest signed checkpoint and how to check it.
type CheckpointInfo struct {
	Seq         int64     `json:"seq"`
	Size        int64     `json:"size"`
	Time        time.Time `json:"time"`
	Note        string    `json:"note"` // the signed note, as `warden evidence checkpoint` prints it
	Key         string    `json:"key"`  // the verifier key that signed it
	HowToVerify string    `json:"how_to_verify"`
}

// AttributionInfo names the databases that attributed the sources.
type AttributionInfo struct {
	// Recorded is false when no config record of the period says which
	// databases were used.
	Recorded bool                `json:"recorded"`
	Sources  []AttributionSource `json:"sources"`
}

// AttributionSource is one database, as serve recorded it at start.
type AttributionSource struct {
	Kind        string    `json:"kind"`
	Path        string    `json:"path"`
	Vendor      string    `json:"vendor"`
	Description string    `json:"description"`
	License     string    `json:"license"`
	Date        time.Time `json:"date"`
	SHA256      string    `json:"sha256"`
	Networks    int64     `json:"networks"`
}

// Episode is one episode in the report. Requests is the total (the
// record's "total"); the record's per-kind counts are RequestsByKind.
type Episode struct {
	ID                string                 `json:"id"`
	State             string                 `json:"state"`
	Source            string                 `json:"source"`
	Prefix            string                 `json:"prefix"`
	Kind              string                 `json:"kind"`
	FirstSeen         time.Time              `json:"first_seen"`
	LastSeen          time.Time              `json:"last_seen"`
	Requests          uint64                 `json:"requests"`
	RequestsByKind    evidence.Requests      `json:"requests_by_kind"`
	Verified          bool                   `json:"verified"`
	PeakPerSec        float64                `json:"peak_per_sec"`
	MeanPerSec        float64                `json:"mean_per_sec"`
	ASN               uint32                 `json:"asn"`
	Org               string                 `json:"org"`
	Country           string                 `json:"country"`
	Network           string                 `json:"network"`
	AbuseEmail        string                 `json:"abuse_email"`
	AttributionSource string                 `json:"attribution_source"`
	Hashes            []Hash                 `json:"hashes"`
	HashesSeen        uint64                 `json:"hashes_seen"`
	HashesRegistered  uint64                 `json:"hashes_registered"`
	Clients           []evidence.ClientCount `json:"clients"`
	UserAgents        []evidence.ValueCount  `json:"user_agents"`
	Ports             []evidence.PortCount   `json:"ports"`
	Actions           evidence.Actions       `json:"actions"`
	Timeline          evidence.Timeline      `json:"timeline"`
	// Record is the index in the log of the record this comes from; Body
	// that record's body, byte for byte (kept for XARF evidence).
	Record int64     `json:"record"`
	Logged time.Time `json:"logged"`
	body   []byte
}

// Hash is an info hash asked for. Revoked is set when the log holds its
// revocation (and no later restore); Reason is the revocation's.
type Hash struct {
	InfoHash   bittorrent.InfoHash `json:"info_hash"`
	Count      uint64              `json:"count"`
	Registered bool                `json:"registered"`
	Revoked    bool                `json:"revoked"`
	Reason     string              `json:"reason,omitempty"`
	Sources    int                 `json:"sources,omitempty"` // in the report's top list: how many sources asked
}

// Source sums the episodes of one source.
type Source struct {
	Source   string   `json:"source"`
	Prefix   string   `json:"prefix"`
	ASN      uint32   `json:"asn"`
	Org      string   `json:"org"`
	Country  string   `json:"country"`
	Episodes int      `json:"episodes"`
	Kinds    []string `json:"kinds"`
	Requests uint64   `json:"requests"`
	// VerifiedRequests and SpoofableRequests split Requests by whether
	// the source proved its address; Verified is true if most were.
	VerifiedRequests  uint64           `json:"verified_requests"`
	SpoofableRequests uint64           `json:"spoofable_requests"`
	Verified          bool             `json:"verified"`
	PeakPerSec        float64          `json:"peak_per_sec"`
	MeanPerSec        float64          `json:"mean_per_sec"`
	FirstSeen         time.Time        `json:"first_seen"`
	LastSeen          time.Time        `json:"last_seen"`
	Actions           evidence.Actions `json:"actions"`
}

// Organisation groups the sources attributed to one organisation (by ASN
// and name); sources nothing attributed form one group with ASN 0 and no
// name.
type Organisation struct {
	ASN        uint32           `json:"asn"`
	Org        string           `json:"org"`
	Country    string           `json:"country"`
	AbuseEmail string           `json:"abuse_email"`
	Networks   []string         `json:"networks"`
	Sources    []string         `json:"sources"`
	Episodes   int              `json:"episodes"`
	Requests   uint64           `json:"requests"`
	PeakPerSec float64          `json:"peak_per_sec"`
	FirstSeen  time.Time        `json:"first_seen"`
	LastSeen   time.Time        `json:"last_seen"`
	Actions    evidence.Actions `json:"actions"`
	// Notice is a plain-text abuse notice ready to send; XARF the XARF v4
	// reports, one per episode (empty, with XARFProblem saying why, when
	// the reporter has no email address).
	Notice      string `json:"notice"`
	XARF        []XARF `json:"xarf"`
	XARFProblem string `json:"xarf_problem,omitempty"`
}

// RecordCounts says what the report read.
type RecordCounts struct {
	Read     int64 `json:"read"`     // records read, all kinds
	Episodes int64 `json:"episodes"` // episode records read (several per episode)
	Pruned   int64 `json:"pruned"`   // records whose bodies were pruned (retention): not read
	Unsigned int64 `json:"unsigned"` // records newer than the checkpoint: not read
}

func (r *Report) top() int {
	if r.chartTop <= 0 {
		return DefaultTop
	}
	return r.chartTop
}
