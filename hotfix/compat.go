package hotfix

import (
	"debug/buildinfo"
	"fmt"
	"runtime/debug"
	"strings"
)

// runtimeSettings are the build settings that change the Go runtime or
// the code of every package: a plugin that differs in one of them cannot
// share the program's runtime.
var runtimeSettings = []string{"-compiler", "-race", "-msan", "-asan", "-trimpath", "GOARCH", "GOOS", "GOAMD64", "GOEXPERIMENT"}

// checkBuild compares the plugin's build information with the program's
// before anything of the plugin is loaded. plugin.Open checks package
// versions itself, but a plugin of another Go release crashes the process
// in plugin.Open ("runtime: no plugin module data") instead of returning
// an error, so the toolchain must be checked first.
func checkBuild(path string) error {
	pi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: not a Go plugin: %v", ErrOpen, err)
	}
	hi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("%w: this program has no build information to compare", ErrIncompatible)
	}
	if pi.GoVersion != hi.GoVersion {
		return fmt.Errorf("%w: plugin built with %s, this program with %s", ErrIncompatible, pi.GoVersion, hi.GoVersion)
	}
	setting := func(bi *debug.BuildInfo, key string) string {
		for _, s := range bi.Settings {
			if s.Key == key {
				return s.Value
			}
		}
		return ""
	}
	if m := setting(pi, "-buildmode"); m != "plugin" {
		return fmt.Errorf("%w: built with -buildmode=%s, not plugin", ErrOpen, m)
	}
	var diff []string
	for _, k := range runtimeSettings {
		if p, h := setting(pi, k), setting(hi, k); p != h {
			diff = append(diff, fmt.Sprintf("%s: plugin %q, program %q", k, p, h))
		}
	}
	host := map[string]*debug.Module{hi.Main.Path: &hi.Main}
	for _, d := range hi.Deps {
		for d.Replace != nil {
			d = d.Replace
		}
		host[d.Path] = d
	}
	for _, d := range append([]*debug.Module{&pi.Main}, pi.Deps...) {
		for d.Replace != nil {
			d = d.Replace
		}
		if h := host[d.Path]; h != nil && (h.Version != d.Version || h.Sum != d.Sum) {
			diff = append(diff, fmt.Sprintf("module %s: plugin %s %s, program %s %s", d.Path, d.Version, d.Sum, h.Version, h.Sum))
		}
	}
	if len(diff) > 0 {
		return fmt.Errorf("%w: %s", ErrIncompatible, strings.Join(diff, "; "))
	}
	return nil
}
