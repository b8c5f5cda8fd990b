package harness

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	// MountPoint is the mount point with mountinfo's octal escapes undone.
	MountPoint string
	// Line is the raw mountinfo line.
	Line string
}

// Mounts lists the mounts of the calling process's mount namespace
// (/proc/self/mountinfo), for leak accounting in long-running programs.
func Mounts() []Mount {
	var out []Mount
	for _, m := range mounts() {
		out = append(out, Mount{MountPoint: m.mountPoint, Line: m.line})
	}
	return out
}
