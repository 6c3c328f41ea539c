// Package atomicfile writes files so that a crash at any moment leaves the
// old file or the new one, whole: the data goes to a temporary file beside
// the target, is synced, then takes the target's name, and the directory
// is synced so that the new name itself survives.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes path with mode through write. Unless replace is set it
// refuses to replace an existing file (an error satisfying
// errors.Is(err, fs.ErrExist)), which a file that must never change, such
// as a key, relies on.
func Write(path string, mode os.FileMode, replace bool, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a rename: nothing; after a link: the spare name
	err = f.Chmod(mode)
	if err == nil {
		err = write(f)
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("sync %s: %w", tmp, err)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path) // fails if path exists
	}
	if err != nil {
		return err
	}
	return SyncDir(dir)
}

// WriteFile writes data to path (mode 0644), replacing what was there.
func WriteFile(path string, data []byte) error {
	return Write(path, 0o644, true, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes the directory's entries durable: without it a crash just
// after a rename or link could lose the new name.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
