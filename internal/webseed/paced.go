package webseed

import (
	"io"
	"net/http"
	"net/netip"
	"os"
	"time"

	"warden/internal/limit"
)

// unit is what one token of the bandwidth limiter stands for: a
// BitTorrent block, so a client asking for one is charged no more than
// it gets. maxChunk is the most handed to the kernel at once: a write
// deadline is set before each, so a stalled reader is cut off within the
// stall timeout.
const (
	unit     = 16 << 10
	maxChunk = 1 << 20
)

// bandwidthConfig is the limit.Config of the bandwidth buckets: one token
// per unit of bytes, the source and prefix lengths of base ([limit]),
// and no bans (a source over its bandwidth is slowed down, not punished).
func bandwidthConfig(c Config, base limit.Config) limit.Config {
	lc := base
	lc.RatePerSec = float64(c.MaxBytesPerSec) / unit
	lc.Burst = int(c.BurstBytes / unit)
	lc.PrefixRatePerSec = float64(c.PrefixMaxBytesPerSec) / unit
	lc.PrefixBurst = int(c.PrefixBurstBytes / unit)
	lc.TableBytes = c.BandwidthTableBytes
	lc.BanAfter = 0
	lc.MaxBans = 1
	lc.BlocklistFile = ""
	return lc
}

func limitDefaults() limit.Config { return limit.DefaultConfig() }

// pacedWriter sends a reply in chunks of at most maxChunk, each within the
// source's bandwidth and with a fresh write deadline. A file reaches it as
// an *io.LimitedReader over an *os.File (net/http's ServeContent), which
// it hands on chunk by chunk to the connection, so the kernel still copies
// it (sendfile).
type pacedWriter struct {
	http.ResponseWriter
	h      *handler
	rc     *http.ResponseController
	r      *http.Request
	src    netip.Addr
	status int
	credit int64 // bytes paid for and not yet sent
}

func (p *pacedWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	var done int
	for len(b) > 0 {
		n, err := p.take(int64(min(len(b), maxChunk)))
		if err != nil {
			return done, err
		}
		m, err := p.ResponseWriter.Write(b[:n])
		done += m
		p.h.bytes.Add(uint64(m))
		if err != nil {
			return done, err
		}
		b = b[n:]
	}
	return done, nil
}

func (p *pacedWriter) ReadFrom(src io.Reader) (int64, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	lr, ok := src.(*io.LimitedReader)
	rf, isRF := p.ResponseWriter.(io.ReaderFrom)
	if !ok || !isRF {
		return io.Copy(writerOnly{p}, src)
	}
	f, isFile := lr.R.(*os.File)
	if !isFile {
		return io.Copy(writerOnly{p}, src)
	}
	var total int64
	for lr.N > 0 {
		n, err := p.take(min(lr.N, maxChunk))
		if err != nil {
			return total, err
		}
		chunk := io.LimitedReader{R: f, N: n}
		m, err := rf.ReadFrom(&chunk)
		total += m
		lr.N -= m
		p.h.bytes.Add(uint64(m))
		if err != nil || m < n { // m < n: the file ended early
			return total, err
		}
	}
	return total, nil
}

// writerOnly hides ReadFrom, so io.Copy does not call back into it.
type writerOnly struct{ io.Writer }

// take waits until the source may be sent up to want bytes and returns
// how many (at least one unit's worth or want, whichever is less), after
// setting the write deadline for them. It fails once the request is
// cancelled (the client gone, warden stopping).
func (p *pacedWriter) take(want int64) (int64, error) {
	h := p.h
	if h.bw == nil {
		return want, p.deadline(h.now())
	}
	for {
		now := h.now()
		for p.credit < want && h.bw.Allow(p.src, now) == limit.Allowed {
			p.credit += unit
		}
		if p.credit > 0 {
			n := min(p.credit, want)
			p.credit -= n
			return n, p.deadline(now)
		}
		h.waits.Add(1)
		t := time.NewTimer(h.bwWait)
		select {
		case <-t.C:
		case <-p.r.Context().Done():
			t.Stop()
			return 0, p.r.Context().Err()
		}
	}
}

func (p *pacedWriter) deadline(now time.Time) error {
	err := p.rc.SetWriteDeadline(now.Add(p.h.stall))
	if err == http.ErrNotSupported {
		return nil // httptest's recorder
	}
	return err
}
