//go:build !unix

package hotfix

import "io/fs"

// owner is unknown here, so every plugin is refused as untrusted.
func owner(fs.FileInfo) (uint32, bool) { return 0, false }
