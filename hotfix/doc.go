// Package hotfix applies fixes shipped as Go plugins to a running program.
//
// A fix is a plugin (go build -buildmode=plugin) that exports
//
//	func Patches(b *registry.Batch) error
//
// which stages its redirects with registry.Stage. Load opens the plugin,
// lets Patches stage them and commits them as one batch: every patch of
// the fix takes effect, or none. Undo reverts the batch.
//
// The plugin must be built by the same toolchain, with the same flags and
// the same versions of every package it shares with the program: build it
// from within the program's own module. Anything else is refused with
// ErrIncompatible, and nothing changes. Load compares the plugin's Go build
// information with the program's before opening it (a plugin of another Go
// release would crash the process inside plugin.Open); plugin.Open's own
// package-version check comes after, and its error is wrapped the same way.
//
// Patches can only redirect functions the program itself contains: a
// function the program never linked in has its only copy in the plugin,
// and Stage refuses it (registry.ErrNotEntry). Each fix needs its own
// package path: plugin.Open refuses a second plugin of a path already
// loaded.
//
// A plugin runs with the program's privileges, so Load refuses a file that
// someone else could have written, in the manner of sshd's StrictModes:
// the file and every directory above it must be owned by this process's
// user or by root and not writable by group or others (a root-owned
// directory with the sticky bit, such as /tmp, is accepted: nobody else
// can rename or remove our entries in it).
//
// It owns loading fix plugins, checking their files' ownership and build, and
// committing their patches as one registry batch. It must not write code or
// read binaries itself: registry does both.
package hotfix
