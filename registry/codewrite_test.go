//go:build linux && amd64

package registry_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-go/switchboard/dispatch"
	"github.com/switchboard-go/switchboard/registry"
)

//go:noinline
func wxA(x int) int { return twice(x) + 1 }

//go:noinline
func wxB(x int) int { return twice(x) + 2 }

//go:noinline
func wxC(x int) int { return twice(x) + 3 }

const wxEnv = "SWITCHBOARD_WX_CHILD"

// TestCodeWriteDenied runs TestCodeWriteChild in a child process that
// patches, then puts itself under a W^X policy: prctl(PR_SET_MDWE) (what
// systemd's MemoryDenyWriteExecute= becomes on new kernels) or a seccomp
// filter refusing mprotect with PROT_EXEC (what systemd installs
// otherwise). Every operation that would write code must be refused with
// ErrCodeWrite and change nothing; a retarget, which writes no code, works.
func TestCodeWriteDenied(t *testing.T) {
	for _, policy := range []string{"mdwe", "seccomp"} {
		t.Run(policy, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCodeWriteChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), wxEnv+"="+policy)
			out, err := cmd.CombinedOutput()
			if _, reason, skipped := strings.Cut(string(out), "WXSKIP "); skipped {
				t.Skip(strings.TrimSpace(strings.SplitN(reason, "\n", 2)[0]))
			}
			if err != nil || !strings.Contains(string(out), "WXOK") {
				t.Fatalf("child: %v\n%s", err, out)
			}
			t.Logf("%s", out)
		})
	}
}

func TestCodeWriteChild(t *testing.T) {
	policy := os.Getenv(wxEnv)
	if policy == "" {
		t.Skip("runs as TestCodeWriteDenied's child")
	}
	impl1 := func(x int) int { return -x }
	impl2 := func(x int) int { return -2 * x }
	must(t, registry.Set(wxA, impl1))
	if err := denyWX(policy); err != nil {
		fmt.Printf("WXSKIP the kernel refuses %s: %v\n", policy, err)
		return
	}
	// The probe that classifies a planner's "no relay window" (a new
	// relay page may not become executable either).
	if err := dispatch.CheckCodeWrite(); !errors.Is(err, registry.ErrCodeWrite) {
		t.Errorf("CheckCodeWrite under W^X: %v", err)
	}
	before := registry.List()
	err := registry.Reset(wxA)
	t.Logf("Reset: %v", err)
	if !errors.Is(err, registry.ErrCodeWrite) || wxA(1) != -1 {
		t.Errorf("Reset under W^X: %v, wxA(1) = %d; want ErrCodeWrite and still -1", err, wxA(1))
	}
	err = registry.Set(wxB, impl1)
	t.Logf("first Set: %v", err)
	if !errors.Is(err, registry.ErrCodeWrite) || wxB(1) != 4 {
		t.Errorf("first Set under W^X: %v, wxB(1) = %d; want ErrCodeWrite and 4", err, wxB(1))
	}
	_, err = registry.Original(wxC)
	t.Logf("Original: %v", err)
	if !errors.Is(err, registry.ErrCodeWrite) {
		t.Errorf("Original under W^X: %v, want ErrCodeWrite", err)
	}
	if after := registry.List(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("List changed:\n%v\n%v", before, after)
	}
	if err := registry.Set(wxA, impl2); err != nil || wxA(1) != -2 {
		t.Errorf("retarget under W^X (no code write): %v, wxA(1) = %d", err, wxA(1))
	}
	var re *registry.Error
	if !errors.As(err, &re) && err != nil {
		t.Errorf("%T is not *registry.Error", err)
	}
	if !t.Failed() {
		fmt.Println("WXOK")
	}
}

// denyWX puts this process under a W^X policy.
func denyWX(policy string) error {
	switch policy {
	case "mdwe":
		return unix.Prctl(unix.PR_SET_MDWE, unix.PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)
	case "seccomp":
		return seccompDenyExec()
	}
	return fmt.Errorf("unknown policy %q", policy)
}

// seccompDenyExec installs, on every thread, a filter that fails mprotect
// and pkey_mprotect with EPERM when they ask for PROT_EXEC, as systemd's
// MemoryDenyWriteExecute= does.
func seccompDenyExec() error {
	const (
		ldAbs  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset   = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret    = unix.BPF_RET | unix.BPF_K
		allow  = unix.SECCOMP_RET_ALLOW
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		offNr  = 0
		offArc = 4
		offArg = 16 + 2*8 // args[2], the protection, low half
	)
	prog := []unix.SockFilter{
		{Code: ldAbs, K: offArc},
		{Code: jeq, K: unix.AUDIT_ARCH_X86_64, Jt: 1},
		{Code: ret, K: allow},
		{Code: ldAbs, K: offNr},
		{Code: jeq, K: unix.SYS_MPROTECT, Jt: 1},
		{Code: jeq, K: unix.SYS_PKEY_MPROTECT, Jf: 3},
		{Code: ldAbs, K: offArg},
		{Code: jset, K: unix.PROT_EXEC, Jf: 1},
		{Code: ret, K: eperm},
		{Code: ret, K: allow},
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}
