package registry

import (
	"context"
	"runtime/pprof"
	"testing"
)

// TestLabelWord checks the probe on the running toolchain: it finds one
// word, and that word is what pprof sets, what children inherit, and (by
// the layout check) a label list that reads back as set.
func TestLabelWord(t *testing.T) {
	off, err := labelOffset()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("label word at g+%d, layout readable: %v", off, labelProbe.layout)
	if !labelProbe.layout {
		t.Errorf("label layout not recognized on this toolchain")
	}
	done := make(chan []string)
	go func() {
		ctx := pprof.WithLabels(context.Background(), pprof.Labels("k1", "v1", "k0", "v0"))
		pprof.SetGoroutineLabels(ctx)
		inner := make(chan []string)
		go func() {
			kv, err := labelList(off)
			if err != nil {
				t.Error(err)
			}
			inner <- kv
		}()
		done <- <-inner
	}()
	got := <-done
	want := []string{"k0", "v0", "k1", "v1"}
	if len(got) != len(want) {
		t.Fatalf("labels of a child: %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("labels of a child: %q, want %q", got, want)
		}
	}
}
