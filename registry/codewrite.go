package registry

import (
	"errors"

	"github.com/switchboard-go/switchboard/dispatch"
)

// codeWriteCause reports ErrCodeWrite for a refusal whose real cause is a
// W^X policy: a planner whose relay pages may not become executable finds
// no relay window. Probing only after such a failure keeps the probe off
// every successful Set. Code writes themselves (Install, Apply, Restore)
// report ErrCodeWrite directly.
func codeWriteCause(err error) error {
	if errors.Is(err, ErrNoRelay) {
		if cerr := dispatch.CheckCodeWrite(); cerr != nil {
			return cerr
		}
	}
	return err
}
