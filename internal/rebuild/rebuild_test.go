package rebuild

import "testing"

func TestStripDWARFFlags(t *testing.T) {
	for in, want := range map[string]string{
		"-s -w":                  "",
		"-X=a.b=c -s":            "-X=a.b=c",
		"--w=true -X a.b=c -s=1": "-X a.b=c",
		"-linkmode=external":     "-linkmode=external",
	} {
		if got := stripDWARFFlags(in); got != want {
			t.Errorf("stripDWARFFlags(%q) = %q, want %q", in, got, want)
		}
	}
}
