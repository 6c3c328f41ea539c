package bencode

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

var (
	sinkBuf []byte
	sinkErr error
)

func BenchmarkAppendReply(b *testing.B) {
	for _, n := range []int{1, 50, 200} { // n = peers in the compact reply
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			peers := make([]byte, 6*n)
			buf := make([]byte, 0, 64+len(peers))
			b.ReportAllocs()
			for b.Loop() {
				buf = appendReply(buf[:0], 100, 20, 1800, peers)
			}
			sinkBuf = buf
		})
	}
}

type benchReply struct {
	Complete    int    `bencode:"complete"`
	Incomplete  int    `bencode:"incomplete"`
	Interval    int    `bencode:"interval"`
	MinInterval int    `bencode:"min interval"`
	Peers       []byte `bencode:"peers"`
}

func BenchmarkMarshal(b *testing.B) {
	peers := make([]byte, 6*50)
	inputs := []struct {
		name string
		v    any
	}{
		{"struct reply", benchReply{100, 20, 1800, 900, peers}},
		{"map reply", map[string]any{"complete": 100, "incomplete": 20, "interval": 1800, "min interval": 900, "peers": peers}},
		{"torrent", benchTorrent(1000)},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			buf := make([]byte, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				buf, sinkErr = AppendMarshal(buf[:0], in.v)
			}
			sinkBuf = buf
		})
	}
}

// benchTorrent returns a multi-file torrent with the given number of files.
func benchTorrent(files int) torrent {
	t := torrent{
		Announce:     "http://tracker.example/announce",
		AnnounceList: [][]string{{"http://tracker.example/announce"}, {"udp://tracker.example:6969"}},
		Info: torrentInfo{
			Name:        "dataset",
			PieceLength: 1 << 18,
			Pieces:      bytes.Repeat([]byte{0xab}, 20*files),
		},
	}
	for i := range files {
		t.Info.Files = append(t.Info.Files, torrentFile{Length: int64(i) * 1000, Path: []string{"dir", fmt.Sprintf("file%05d.bin", i)}})
	}
	return t
}

func BenchmarkUnmarshal(b *testing.B) {
	tor := must(Marshal(benchTorrent(1000)))
	reply := must(Marshal(benchReply{100, 20, 1800, 900, make([]byte, 6*50)}))
	inputs := []struct {
		name string
		data []byte
		into func() any
	}{
		{"reply/struct", reply, func() any { return new(benchReply) }},
		{"reply/any", reply, func() any { return new(any) }},
		{"torrent/struct", tor, func() any { return new(torrent) }},
		{"torrent/any", tor, func() any { return new(any) }},
		{"torrent/raw info", tor, func() any {
			return new(struct {
				Info RawMessage `bencode:"info"`
			})
		}},
		{"deep list", []byte(strings.Repeat("l", 64) + strings.Repeat("e", 64)), func() any { return new(any) }},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				sinkErr = Unmarshal(in.data, in.into())
			}
			if sinkErr != nil {
				b.Fatal(sinkErr)
			}
		})
	}
}
