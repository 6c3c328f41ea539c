package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	tests := []struct {
		name    string
		replace bool
		data    string
		fail    error // returned by write
		want    string
		wantErr error
	}{
		{name: "new file", data: "one", want: "one"},
		{name: "no replace refuses an existing file", data: "two", want: "one", wantErr: fs.ErrExist},
		{name: "replace", replace: true, data: "three", want: "three"},
		{name: "a failed write leaves the old file", replace: true, data: "four", fail: errors.New("disk on fire"), want: "three"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(path, 0o600, tt.replace, func(w io.Writer) error {
				if _, err := io.WriteString(w, tt.data); err != nil {
					return err
				}
				return tt.fail
			})
			switch {
			case tt.fail != nil && !errors.Is(err, tt.fail):
				t.Fatalf("Write = %v, want %v", err, tt.fail)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Write = %v, want %v", err, tt.wantErr)
			case tt.fail == nil && tt.wantErr == nil && err != nil:
				t.Fatalf("Write = %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.want {
				t.Fatalf("file holds %q, %v; want %q", got, err, tt.want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Fatalf("directory holds %v, %v; want the file alone (no temporary left)", entries, err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	for _, data := range []string{"a", "bb"} {
		if err := WriteFile(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != data {
			t.Fatalf("file holds %q, %v; want %q", got, err, data)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode(), err)
	}
}
