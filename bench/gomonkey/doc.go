// Package gomonkeybench compares Switchboard with gomonkey v2.13.0, the
// most used run-time patcher for Go. It is a separate module so that users
// of Switchboard never download gomonkey.
//
// Everything lives in its tests:
//
//   - BenchmarkDispatch measures a redirected call against a direct call,
//     in the same benchmark, for Switchboard site mode, Switchboard call
//     mode and gomonkey ApplyFunc.
//   - TestFlipStorm runs the concurrent patch/unpatch storm of docs/design.md
//     section 8 against gomonkey and Switchboard, each in a child process,
//     and reports how each one fared.
//
// See README.md for the commands and the measured results.
package gomonkeybench
