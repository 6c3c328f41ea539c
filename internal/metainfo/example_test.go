package metainfo_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"warden/internal/metainfo"
)

// A publisher makes a hybrid torrent of a directory, with a tracker tier
// and a web seed, and writes it out.
func ExampleCreate() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	show := filepath.Join(dir, "show-01")
	os.MkdirAll(filepath.Join(show, "extras"), 0o755)
	os.WriteFile(filepath.Join(show, "episode.txt"), []byte("hello, swarm\n"), 0o644)
	os.WriteFile(filepath.Join(show, "extras", "notes.txt"), []byte("notes\n"), 0o644)

	t, err := metainfo.Create(context.Background(), show, metainfo.CreateOptions{
		Trackers: [][]string{{"http://tracker.example/announce"}},
		WebSeeds: []string{"https://cdn.example/"},
		Progress: func(done, total int64) {}, // draw a bar here
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := t.Marshal()
	os.WriteFile(filepath.Join(dir, "show-01.torrent"), data, 0o644)
	for _, f := range t.Info.Files {
		fmt.Println(f.Path, f.Length, f.Pad)
	}
	fmt.Println(t.Hashes.V1) // libtorrent 2.0.8 makes the same two
	fmt.Println(t.Hashes.V2)
	// Output:
	// [episode.txt] 13 false
	// [.pad 16371] 16371 true
	// [extras notes.txt] 6 false
	// [.pad 16378] 16378 true
	// 9c0a4fc305f7560159755acec2a94f15d2e63ed3
	// a0c814a22db48884af0fa3a365bdd14f21cfaa27051f904c05ab6a4d8b5d4957
}
