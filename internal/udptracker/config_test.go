package udptracker

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"warden/internal/confkey"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	tests := []struct {
		name      string
		edit      func(*Config)
		wantField string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"one worker", func(c *Config) { c.Workers = 1 }, ""},
		{"minimum rotation", func(c *Config) { c.CookieRotation = 2 * time.Minute }, ""},
		{"socket buffer", func(c *Config) { c.SocketBufferBytes = 8 << 20 }, ""},
		{"empty listen", func(c *Config) { c.Listen = "" }, "listen"},
		{"zero workers", func(c *Config) { c.Workers = 0 }, "workers"},
		{"too many workers", func(c *Config) { c.Workers = maxWorkers + 1 }, "workers"},
		{"zero batch", func(c *Config) { c.BatchSize = 0 }, "batch_size"},
		{"batch over UIO_MAXIOV", func(c *Config) { c.BatchSize = 1025 }, "batch_size"},
		{"rotation shorter than an ID lives", func(c *Config) { c.CookieRotation = time.Minute }, "cookie_rotation"},
		{"zero rotation", func(c *Config) { c.CookieRotation = 0 }, "cookie_rotation"},
		{"negative socket buffer", func(c *Config) { c.SocketBufferBytes = -1 }, "socket_buffer_bytes"},
		{"shared cookie secret", func(c *Config) { c.CookieSecret = make(CookieSecret, 32) }, ""},
		{"short cookie secret", func(c *Config) { c.CookieSecret = make(CookieSecret, 31) }, "cookie_secret"},
		{"error refusals", func(c *Config) { c.RefusalReply = ReplyError }, ""},
		{"unknown refusal reply", func(c *Config) { c.RefusalReply = 7 }, "refusal_reply"},
		{"refusal table too small", func(c *Config) { c.RefusalTableBytes = 1 << 10 }, "refusal_table_bytes"},
		{"refusal table too large", func(c *Config) { c.RefusalTableBytes = 2 << 30 }, "refusal_table_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			before := cfg
			err := cfg.Validate()
			if !reflect.DeepEqual(cfg, before) {
				t.Errorf("Validate changed the config to %+v", cfg)
			}
			if tt.wantField == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			var ce *confkey.Error
			if !errors.As(err, &ce) || ce.Key != tt.wantField {
				t.Errorf("Validate() = %v, want a confkey.Error for %s", err, tt.wantField)
			}
		})
	}
}

func TestRefusalReplyText(t *testing.T) {
	for _, tt := range []struct {
		text    string
		want    RefusalReply
		wantErr bool
	}{
		{"calm", ReplyCalm, false},
		{"error", ReplyError, false},
		{"silent", 0, true},
		{"Calm", 0, true},
		{"", 0, true},
	} {
		var r RefusalReply
		err := r.UnmarshalText([]byte(tt.text))
		if (err != nil) != tt.wantErr || (err == nil && r != tt.want) {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v, error %v", tt.text, r, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if b, _ := r.MarshalText(); string(b) != tt.text {
				t.Errorf("MarshalText(%v) = %q, want %q", r, b, tt.text)
			}
		}
	}
}
