package registry

// InjectUnsupported replaces the start-up checks with ones returning
// these errors (nil keeps the real check) until restore is called.
func InjectUnsupported(selfCheckErr, writableErr error) (restore func()) {
	oldSelf, oldWritable := selfCheck, writable
	if selfCheckErr != nil {
		selfCheck = func() error { return selfCheckErr }
	}
	if writableErr != nil {
		writable = func() error { return writableErr }
	}
	return func() { selfCheck, writable = oldSelf, oldWritable }
}
