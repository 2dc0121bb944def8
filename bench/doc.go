// Package bench holds the dispatch-overhead variants that both
// `go test -bench` (bench_test.go) and `switchboard bench` run: a direct
// call, Switchboard's site and call modes, a 12-byte per-slot patch written
// here as the reference technique, a func variable and an interface call,
// all of the same tiny func(int) int. It also measures Set and Reset.
//
// It patches only its own victims. The gomonkey comparison lives in the
// separate module bench/gomonkey so that users never download gomonkey.
package bench
