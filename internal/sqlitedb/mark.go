package sqlitedb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// A commit record is a small file beside a database (its path plus
// "-mark") saying how far the file had got: the generation and count after
// the last change acknowledged to a caller. It exists because SQLite treats
// the first frame of the write-ahead log with a bad checksum as the end of
// the log: one flipped byte in the WAL after a crash silently takes every
// later commit with it, and the database opens as if they had never
// happened. A generation lower than the record's is that loss made visible.
//
// The file holds two slots. A write goes to the slot that does not hold the
// highest record, and is fsynced before the caller acknowledges the change,
// so a write torn by a crash leaves the other slot intact. Readers take the
// valid slot with the highest generation; the record is therefore a lower
// bound of what was acknowledged, never more.

// MarkSuffix is appended to a database's path to name its commit record.
const MarkSuffix = "-mark"

// Record is what a commit record says of its database.
type Record struct {
	// Generation is the file's change counter, which every committed
	// change raises.
	Generation int64
	// Count is how many records the file held then; it only makes
	// messages clearer.
	Count int64
}

// The layout of a commit record: two slots of slotSize bytes, each a magic
// number, the generation and count (big-endian), and a CRC-32C of the
// preceding bytes.
const (
	slotSize  = 32
	markSize  = 2 * slotSize
	slotMagic = "wmk1"
	slotCRC   = 4 + 8 + 8 // bytes covered by the checksum
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errNoValidSlot: a commit record with neither slot valid; Open reports it
// as ErrRecordDamaged.
var errNoValidSlot = errors.New("no valid slot")

// ParseMark decodes a commit record: the valid slot with the highest
// generation. It fails if b is not exactly the size of a record, or if
// neither slot is valid (bad magic, bad checksum, or a negative number).
func ParseMark(b []byte) (Record, error) {
	if len(b) != markSize {
		return Record{}, fmt.Errorf("%d bytes, want %d", len(b), markSize)
	}
	best, ok := Record{}, false
	for i := range 2 {
		r, valid := parseSlot(b[i*slotSize : (i+1)*slotSize])
		if valid && (!ok || r.Generation > best.Generation) {
			best, ok = r, true
		}
	}
	if !ok {
		return Record{}, errNoValidSlot
	}
	return best, nil
}

func parseSlot(s []byte) (Record, bool) {
	if string(s[:4]) != slotMagic || binary.BigEndian.Uint32(s[slotCRC:]) != crc32.Checksum(s[:slotCRC], castagnoli) {
		return Record{}, false
	}
	r := Record{
		Generation: int64(binary.BigEndian.Uint64(s[4:])),
		Count:      int64(binary.BigEndian.Uint64(s[12:])),
	}
	return r, r.Generation >= 0 && r.Count >= 0
}

// appendSlot appends r encoded as one slot.
func appendSlot(b []byte, r Record) []byte {
	start := len(b)
	b = append(b, slotMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Generation))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Count))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	return append(b, make([]byte, slotSize-(len(b)-start))...)
}

// Mark is an open commit record. While open it holds a shared lock that
// tells [Recover] the database is in use. Its methods are safe for
// concurrent use, and updates from several processes are serialized by a
// lock on the file.
type Mark struct {
	path string
	mu   sync.Mutex // guards f and serializes updates within this process
	f    *os.File
}

// Path returns the commit record's path.
func (m *Mark) Path() string { return m.path }

// openMark opens the commit record of the database at abs and takes the
// shared "in use" lock. If the record does not exist, openMark creates it
// (holding generation 0) if create is set, and otherwise returns a nil Mark
// and no error. found is false if it was created; rec is meaningful only if
// found and err is nil. A record that exists but holds no valid slot is
// returned open, with an error wrapping errNoValidSlot.
func openMark(abs string, create bool) (m *Mark, rec Record, found bool, err error) {
	path := abs + MarkSuffix
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, Record{}, false, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err := createMark(abs, path); err != nil {
			return nil, Record{}, false, fmt.Errorf("create commit record %s: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	} else if err == nil {
		found = true
	}
	if err != nil {
		return nil, Record{}, false, fmt.Errorf("commit record: %w", err)
	}
	if err := lockShared(f); err != nil {
		f.Close()
		return nil, Record{}, false, fmt.Errorf("commit record %s: %w", path, err)
	}
	m = &Mark{path: path, f: f}
	if !found {
		return m, Record{}, false, nil
	}
	rec, err = m.read()
	return m, rec, true, err
}

// createMark makes a commit record holding generation 0 at path, without
// ever leaving a half-written one there: it is written beside it, fsynced,
// and linked into place, which fails harmlessly if another process created
// it first. When run as root it gives the file to the database's owner, as
// SQLite does with its own side files, so the service can still write it.
func createMark(abs, path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	b := appendSlot(appendSlot(nil, Record{}), Record{})
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = matchOwner(tmp, abs)
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(dir)
}

// matchOwner gives path to the owner of like, if this process runs as
// root and they differ; otherwise it does nothing.
func matchOwner(path, like string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, ok := owner(like)
	if !ok {
		return nil
	}
	return os.Lchown(path, uid, gid)
}

// ReadMark reads the commit record of the database at path without
// opening it for writing or taking its locks, for a caller that only reads
// the database. found is false if there is none.
func ReadMark(path string) (rec Record, found bool, err error) {
	b, err := os.ReadFile(path + MarkSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	rec, err = ParseMark(b)
	if err != nil {
		return Record{}, true, fmt.Errorf("commit record %s: %w", path+MarkSuffix, err)
	}
	return rec, true, nil
}

// read returns the record as the file holds it now.
func (m *Mark) read() (Record, error) {
	var b [markSize + 1]byte // one more, to notice a longer file
	n, err := m.f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return Record{}, fmt.Errorf("read commit record %s: %w", m.path, err)
	}
	r, err := ParseMark(b[:n])
	if err != nil {
		return Record{}, fmt.Errorf("commit record %s: %w", m.path, err)
	}
	return r, nil
}

// Advance records that the database has reached r, if r is beyond what the
// record holds, and returns once that is on disk (fsynced). It never
// lowers the record. Call it after a commit and before acknowledging it.
func (m *Mark) Advance(r Record) error {
	return m.update(r, false)
}

// reset makes the record hold r even if it is lower, after a loss was
// accepted or a backup restored.
func (m *Mark) reset(r Record) error {
	return m.update(r, true)
}

func (m *Mark) update(r Record, reset bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return fmt.Errorf("commit record %s: closed", m.path)
	}
	if err := lockUpdate(m.f); err != nil {
		return fmt.Errorf("lock commit record %s: %w", m.path, err)
	}
	defer unlockUpdate(m.f)
	var b [markSize]byte
	if _, err := m.f.ReadAt(b[:], 0); err != nil {
		return fmt.Errorf("read commit record %s: %w", m.path, err)
	}
	slot := 0
	if reset {
		// Both slots, one after the other: a crash in between leaves
		// the higher record in place, so the loss must be accepted again
		// rather than be forgotten.
		one := appendSlot(nil, r)
		for i := range 2 {
			if err := m.writeSync(one, int64(i*slotSize)); err != nil {
				return err
			}
		}
		return nil
	}
	cur0, ok0 := parseSlot(b[:slotSize])
	cur1, ok1 := parseSlot(b[slotSize:])
	switch {
	case ok0 && ok1:
		if max(cur0.Generation, cur1.Generation) >= r.Generation {
			return nil
		}
		if cur0.Generation > cur1.Generation {
			slot = 1 // keep the higher one intact
		}
	case ok0:
		if cur0.Generation >= r.Generation {
			return nil
		}
		slot = 1
	case ok1:
		if cur1.Generation >= r.Generation {
			return nil
		}
	default:
		return fmt.Errorf("commit record %s: %w; warden registry recover rewrites it", m.path, errNoValidSlot)
	}
	return m.writeSync(appendSlot(nil, r), int64(slot*slotSize))
}

func (m *Mark) writeSync(b []byte, off int64) error {
	if _, err := m.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("write commit record %s: %w", m.path, err)
	}
	if err := syncData(m.f); err != nil {
		return fmt.Errorf("sync commit record %s: %w", m.path, err)
	}
	return nil
}

// Close releases the record and its lock. It is idempotent.
func (m *Mark) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return nil
	}
	err := m.f.Close()
	m.f = nil
	return err
}
