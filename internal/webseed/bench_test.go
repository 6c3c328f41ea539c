package webseed

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkRange serves ranges of a 64 MiB file in the page cache over
// one keep-alive loopback connection, as a web seed client asks for
// pieces. The client reads the reply with as little work as it can, so
// the time (and the bytes/s) is mostly the server's; allocations are both
// sides'.
func BenchmarkRange(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		for _, caps := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%dK/caps=%t", size>>10, caps), func(b *testing.B) {
				benchRange(b, size, caps)
			})
		}
	}
}

// benchRange measures replies of size bytes; caps turns on bandwidth caps
// too high to bite, so that only their bookkeeping is measured.
func benchRange(b *testing.B, size int, caps bool) {
	s := newBenchSite(b, caps)
	c, err := net.Dial("tcp", s.srv.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	sink := make([]byte, 256<<10)
	const fileSize = 64 << 20
	r := rand.New(rand.NewPCG(1, 2))
	reqs := make([][]byte, 256)
	for i := range reqs {
		off := r.IntN(fileSize/size) * size
		reqs[i] = fmt.Appendf(nil, "GET /content/big HTTP/1.1\r\nHost: x\r\nRange: bytes=%d-%d\r\n\r\n", off, off+size-1)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Write(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
		n, err := readReply(br)
		if err != nil {
			b.Fatal(err)
		}
		if n != size {
			b.Fatalf("reply of %d bytes, want %d", n, size)
		}
		for left := n; left > 0; {
			m, err := br.Read(sink[:min(left, len(sink))])
			if err != nil {
				b.Fatal(err)
			}
			left -= m
		}
	}
}

// readReply reads a reply's header and returns its Content-Length.
func readReply(br *bufio.Reader) (int, error) {
	n := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if first {
			if len(line) < 12 || string(line[9:12]) != "206" {
				return 0, fmt.Errorf("status line %q", line)
			}
			continue
		}
		if len(line) <= 2 {
			return n, nil
		}
		const cl = "Content-Length: "
		if len(line) > len(cl) && string(line[:len(cl)]) == cl {
			n, err = strconv.Atoi(string(line[len(cl) : len(line)-2]))
			if err != nil {
				return 0, err
			}
		}
	}
}

func newBenchSite(b *testing.B, caps bool) *site {
	b.Helper()
	dir := b.TempDir()
	content := filepath.Join(dir, "content")
	if err := os.Mkdir(content, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(content, "big"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{}), 64<<20); err != nil {
		b.Fatal(err)
	}
	f.Close()
	cfg := DefaultConfig()
	cfg.Listen, cfg.ContentDir = "127.0.0.1:0", content
	cfg.MaxBytesPerSec = 0
	if caps {
		cfg.MaxBytesPerSec, cfg.BurstBytes = 100<<30, 100<<30
		cfg.PrefixMaxBytesPerSec, cfg.PrefixBurstBytes = 100<<30, 100<<30
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, Deps{Gate: Plain(ln), Dirs: Dirs{Content: content}, Limit: limitDefaults()}, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return &site{srv: srv, content: content}
}
