package rebuild

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// HasDWARF reports whether the ELF binary at path has DWARF.
func HasDWARF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil
}

// BuildFlags returns the go build flags this binary was built with, as
// runtime/debug records them, minus the linker's -s and -w.
func BuildFlags() []string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	var out []string
	for _, s := range bi.Settings {
		switch s.Key {
		case "-race", "-msan", "-asan", "-cover", "-trimpath":
			if s.Value == "true" {
				out = append(out, s.Key)
			}
		case "-tags", "-gcflags", "-asmflags", "-buildmode":
			out = append(out, s.Key+"="+s.Value)
		case "-ldflags":
			if v := stripDWARFFlags(s.Value); v != "" {
				out = append(out, "-ldflags="+v)
			}
		}
	}
	return out
}

// stripDWARFFlags drops -s and -w (either dash form, =true or not) from
// linker flags.
func stripDWARFFlags(flags string) string {
	var keep []string
	for _, f := range strings.Fields(flags) {
		switch strings.TrimPrefix(strings.TrimPrefix(f, "-"), "-") {
		case "s", "w", "s=true", "w=true", "s=1", "w=1":
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

// GoTool is the go command of the toolchain that built this binary, when
// it is at hand (a GOTOOLCHAIN switch leaves another go first in PATH).
func GoTool() string {
	root := runtime.GOROOT()
	if p := filepath.Join(root, "bin", "go"); root != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// rebuiltEnv names the temporary directory of a rebuilt program; the
// program removes it when it starts, and never rebuilds again.
const rebuiltEnv = "SWITCHBOARD_REBUILT"

const tempPrefix = "switchboard-rebuild-"

// Program makes the running main program one with DWARF. When it lacks
// DWARF, Program rebuilds it with go build (same package, same recorded
// build flags, without -s -w) and execs the new binary in place with the
// same arguments: it returns only on failure, or when the binary already
// has DWARF. The rebuilt program deletes its temporary copy at start-up.
func Program() error {
	if dir := os.Getenv(rebuiltEnv); dir != "" {
		os.Unsetenv(rebuiltEnv)
		if strings.HasPrefix(filepath.Base(dir), tempPrefix) {
			os.RemoveAll(dir)
		}
		return nil
	}
	exe, err := os.Executable()
	if err != nil || HasDWARF(exe) {
		return nil
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Path == "" || bi.Path == "command-line-arguments" {
		return errors.New("no DWARF, and no package path to rebuild from; build with go build")
	}
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, filepath.Base(bi.Path))
	args := append(append([]string{"build", "-o", bin}, BuildFlags()...), bi.Path)
	if out, err := exec.Command(GoTool(), args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("no DWARF, and go %s failed: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !HasDWARF(bin) {
		os.RemoveAll(dir)
		return fmt.Errorf("go build made %s without DWARF (GOFLAGS=%q)", bin, os.Getenv("GOFLAGS"))
	}
	err = execve(bin, os.Args, append(os.Environ(), rebuiltEnv+"="+dir))
	os.RemoveAll(dir)
	return fmt.Errorf("exec %s: %w", bin, err)
}
