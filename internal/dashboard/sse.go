package dashboard

import (
	"net/http"
	"sync"
	"time"
)

// hub hands each second's event to the open streams. A stream that has
// not taken the last events misses this one rather than hold up the
// others.
type hub struct {
	mu   sync.Mutex // guards subs
	subs map[chan []byte]struct{}
	max  int
}

func newHub(max int) *hub { return &hub{subs: make(map[chan []byte]struct{}), max: max} }

// subscribe adds a stream, or returns nil when max are open.
func (h *hub) subscribe() chan []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= h.max {
		return nil
	}
	c := make(chan []byte, 4)
	h.subs[c] = struct{}{}
	return c
}

func (h *hub) unsubscribe(c chan []byte) {
	h.mu.Lock()
	if _, ok := h.subs[c]; ok {
		delete(h.subs, c)
		close(c)
	}
	h.mu.Unlock()
}

func (h *hub) viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// broadcast offers frame to every stream without blocking.
func (h *hub) broadcast(frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- frame:
		default:
		}
	}
}

// closeAll ends every stream (at shutdown).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}

// sseFrame is one server-sent event.
func sseFrame(event string, data []byte) []byte {
	b := make([]byte, 0, len(event)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// streamWriteTimeout bounds each write of the stream, in place of the
// admin server's write timeout, which would end a stream after 30 s.
const streamWriteTimeout = 10 * time.Second

// events streams the ring's history, then each second's event, until the
// viewer leaves or the dashboard stops.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	c := d.hub.subscribe()
	if c == nil {
		http.Error(w, "too many dashboard viewers; close another tab", http.StatusServiceUnavailable)
		return
	}
	defer d.hub.unsubscribe(c)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	write := func(frame []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(frame); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(sseFrame("history", d.ring.history())) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case frame, ok := <-c:
			if !ok || !write(frame) {
				return
			}
		}
	}
}
