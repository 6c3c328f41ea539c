package report

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if story.dir != "" {
		os.RemoveAll(story.dir)
	}
	os.Exit(code)
}

func mkdirTemp() (string, error) { return os.MkdirTemp("", "warden-report-") }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
