package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// ModuleDir returns the root of the Switchboard module the current
// directory is in, for the generated program's replace directive.
func ModuleDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	data, err := os.ReadFile(gomod)
	if gomod == "" || gomod == os.DevNull || err != nil || !bytes.Contains(data, []byte("module github.com/switchboard-go/switchboard\n")) {
		return "", fmt.Errorf("not inside the Switchboard module (go env GOMOD = %q)", gomod)
	}
	return filepath.Dir(gomod), nil
}

var requireBlocks = regexp.MustCompile(`(?s)require \(.*?\)\n`)

// WriteProgram writes the main module name into dir: a go.mod that
// requires the Switchboard module at module, replaced by that directory
// and with its requirements and go.sum, so that the build needs nothing
// the module's own build does not; and files, by path under dir.
func WriteProgram(dir, module, name string, files map[string][]byte) error {
	gomod, err := os.ReadFile(filepath.Join(module, "go.mod"))
	if err != nil {
		return err
	}
	gosum, err := os.ReadFile(filepath.Join(module, "go.sum"))
	if err != nil {
		return err
	}
	mod := fmt.Sprintf("module %s\n\ngo 1.26.0\n\nrequire github.com/switchboard-go/switchboard v0.0.0\n\n%s\nreplace github.com/switchboard-go/switchboard => %s\n",
		name, bytes.Join(requireBlocks.FindAll(gomod, -1), []byte("\n")), module)
	all := map[string][]byte{"go.mod": []byte(mod), "go.sum": gosum}
	for path, data := range files {
		all[path] = data
	}
	for path, data := range all {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, path), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
