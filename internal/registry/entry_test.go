package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseHashV2(t *testing.T) {
	const full = "a3100e72213a3c0d14251ff08962bd8a663c4391ec8e6600bfe5c5d22e70e52a"
	tests := []struct {
		name, in string
		wantErr  bool
	}{
		{"lower", full, false},
		{"upper", strings.ToUpper(full), false},
		{"v1 length", full[:40], true},
		{"too long", full + "00", true},
		{"not hex", "zz" + full[2:], true},
		{"empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHashV2(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadHashV2) {
					t.Errorf("ParseHashV2(%q) error = %v, want ErrBadHashV2", tt.in, err)
				}
				return
			}
			if err != nil || h.String() != full {
				t.Errorf("ParseHashV2(%q) = %v, %v; want %s", tt.in, h, err, full)
			}
			if got := h.InfoHash().String(); got != full[:40] {
				t.Errorf("InfoHash() = %s, want %s", got, full[:40])
			}
		})
	}
}

func TestEntryJSON(t *testing.T) {
	e := Entry{ID: 7, V2: hv2(1), Name: "x", State: Revoked, Reason: "dmca"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, `"v1"`) || !strings.Contains(s, `"v2":"`+hv2(1).String()+`"`) || !strings.Contains(s, `"state":"revoked"`) {
		t.Errorf("json.Marshal(entry) = %s", s)
	}
	var back Entry
	if err := json.Unmarshal(b, &back); err != nil || back != e {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, e)
	}
	var st State
	if err := st.UnmarshalText([]byte("paused")); err == nil {
		t.Error(`State.UnmarshalText("paused") succeeded`)
	}
}
