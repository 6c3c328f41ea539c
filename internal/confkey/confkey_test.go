package confkey

import (
	"errors"
	"io/fs"
	"testing"
)

func TestIn(t *testing.T) {
	tests := []struct {
		name    string
		section string
		err     error
		want    string // "" means nil
		wantKey string // "" means not an *Error
	}{
		{name: "nil", section: "udp", err: nil},
		{name: "key", section: "udp", err: Errorf("workers", "must be 1-%d, got %d", 1024, 0),
			want: "udp.workers: must be 1-1024, got 0", wantKey: "udp.workers"},
		{name: "indexed key", section: "http", err: Errorf("trusted_proxies[1]", "bad"),
			want: "http.trusted_proxies[1]: bad", wantKey: "http.trusted_proxies[1]"},
		{name: "nested", section: "a", err: In("b", Errorf("c", "bad")),
			want: "a.b.c: bad", wantKey: "a.b.c"},
		{name: "other error", section: "limit", err: fs.ErrNotExist,
			want: "limit: file does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := In(tt.section, tt.err)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("In(%q, nil) = %v, want nil", tt.section, got)
				}
				return
			}
			if got == nil || got.Error() != tt.want {
				t.Fatalf("In(%q, %v) = %v, want %q", tt.section, tt.err, got, tt.want)
			}
			var e *Error
			if isErr := errors.As(got, &e); isErr != (tt.wantKey != "") || isErr && e.Key != tt.wantKey {
				t.Errorf("In(%q, %v): errors.As = %v (%+v), want key %q", tt.section, tt.err, isErr, e, tt.wantKey)
			}
			if !errors.Is(got, tt.err) && tt.wantKey == "" {
				t.Errorf("In(%q, %v) lost the wrapped error", tt.section, tt.err)
			}
		})
	}
}

func TestInLeavesTheOriginal(t *testing.T) {
	err := Errorf("workers", "bad")
	_ = In("udp", err)
	if err.Error() != "workers: bad" {
		t.Errorf("In changed its argument to %q", err)
	}
}
