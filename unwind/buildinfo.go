package unwind

import "debug/buildinfo"

// BuildSetting returns one of the build settings the image records
// (debug/buildinfo: "-pgo", "-gcflags", ...), read from its file once.
func (im *Image) BuildSetting(key string) (string, bool) {
	im.readSettings()
	v, ok := im.settings[key]
	return v, ok
}

// BuildSettings reports whether the image's build settings could be read.
func (im *Image) BuildSettings() bool {
	im.readSettings()
	return im.settings != nil
}

func (im *Image) readSettings() {
	im.buildOnce.Do(func() {
		if bi, err := buildinfo.ReadFile(im.Path); err == nil {
			im.settings = map[string]string{}
			for _, s := range bi.Settings {
				im.settings[s.Key] = s.Value
			}
		}
	})
}
