package registry

import (
	"encoding/json"
	"strings"
	"testing"
)

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
