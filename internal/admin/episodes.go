package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"warden/internal/evidence"
	"warden/internal/registry"
)

// Episodes is what the API reads of the abuse episodes: the open ones and
// the recently closed, kept in memory by the aggregator (the evidence
// log holds them all).
type Episodes interface {
	// List returns up to n episodes, newest first.
	List(n int) []*evidence.Episode
	// Get returns the episode with id.
	Get(id string) (*evidence.Episode, bool)
}

// Recorder takes the operator actions the API carries out (registry adds,
// revocations and restores, bans and unbans) into the evidence log, so
// that what the operator did is on the record beside what sources did.
// It must not block.
type Recorder interface {
	Record(ctx context.Context, kind evidence.Kind, body any)
}

// record tells the recorder of an action, if there is one.
func (s *Server) record(r *http.Request, kind evidence.Kind, body any) {
	if s.deps.Recorder != nil {
		s.deps.Recorder.Record(r.Context(), kind, body)
	}
}

// Action bodies of the records the API writes.
type (
	// TorrentAction records a registry change.
	TorrentAction struct {
		InfoHash string `json:"info_hash"`
		Name     string `json:"name,omitempty"`
		Reason   string `json:"reason,omitempty"`
		By       string `json:"by"`
	}
	// TorrentsAdded records a batch of registrations.
	TorrentsAdded struct {
		Added    int      `json:"added"`
		Existing int      `json:"existing"`
		InfoHash []string `json:"info_hashes"`
		By       string   `json:"by"`
	}
	// BanAction records a ban or unban made through the API.
	BanAction struct {
		Prefix string    `json:"prefix"`
		Until  time.Time `json:"until,omitzero"`
		By     string    `json:"by"`
	}
)

// The page sizes of GET /api/episodes.
const (
	DefaultEpisodesLimit = 100
	MaxEpisodesLimit     = 512
)

// EpisodesResponse answers GET /api/episodes: open and recent episodes,
// newest first.
type EpisodesResponse struct {
	Episodes []*evidence.Episode `json:"episodes"`
}

var errNoEpisodes = errors.New("abuse episodes are off (evidence.enabled = false)")

func (s *Server) listEpisodes(w http.ResponseWriter, r *http.Request) {
	if s.deps.Episodes == nil {
		writeError(w, http.StatusNotFound, errNoEpisodes)
		return
	}
	n := DefaultEpisodesLimit
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxEpisodesLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("n: must be 1-%d", MaxEpisodesLimit))
			return
		}
	}
	eps := s.deps.Episodes.List(n)
	if eps == nil {
		eps = []*evidence.Episode{}
	}
	writeJSON(w, http.StatusOK, EpisodesResponse{Episodes: eps})
}

func (s *Server) getEpisode(w http.ResponseWriter, r *http.Request) {
	if s.deps.Episodes == nil {
		writeError(w, http.StatusNotFound, errNoEpisodes)
		return
	}
	id := r.PathValue("id")
	ep, ok := s.deps.Episodes.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("episode %q: not open nor among the recent ones (the evidence log keeps every episode: warden evidence report)", id))
		return
	}
	writeJSON(w, http.StatusOK, ep)
}

// maxRecordedHashes bounds the info hashes one add record lists.
const maxRecordedHashes = 256

// addedRecord is the record of a batch add: how many were new, and the
// hashes asked for (the first maxRecordedHashes).
func addedRecord(entries []registry.Entry, added int, by string) TorrentsAdded {
	rec := TorrentsAdded{Added: added, Existing: len(entries) - added, By: by}
	for _, e := range entries[:min(len(entries), maxRecordedHashes)] {
		rec.InfoHash = append(rec.InfoHash, wireHash(e).String())
	}
	return rec
}
