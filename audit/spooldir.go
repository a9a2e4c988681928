package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckSpoolDir makes sure Warden's own user can create the spool directory
// and files in it before anything else starts, and when it cannot, names
// the user, the directory's owner and the fix: a root-owned volume (an ECS
// task volume mounted elsewhere than the image's VOLUME, a host directory
// bind-mounted into `docker run`) otherwise fails later as a bare "mkdir:
// permission denied".
func CheckSpoolDir(dir string) error {
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".warden-probe-*"); err == nil {
			name := f.Name()
			_ = f.Close()
			return os.Remove(name)
		}
	}
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("audit.spool.dir %s: %w", dir, err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	return fmt.Errorf("audit.spool.dir %s is not writable by Warden's user (uid %d, gid %d): %w; %s. "+
		"Fix: give uid %d a writable directory at %s: on ECS, a task volume mounted at exactly %s "+
		"(Warden's image declares that path a VOLUME owned by 65532, and ECS and Docker copy that ownership into a new volume); "+
		"with docker run, a named volume (-v warden-spool:%s) or a host directory chowned to %d:%d; "+
		"in Kubernetes, an emptyDir with the pod's securityContext.fsGroup: %d; "+
		"or set audit.spool.dir to a directory uid %d owns",
		dir, uid, gid, err, describeOwner(dir), uid, dir, DefaultSpoolDir, DefaultSpoolDir, uid, gid, gid, uid)
}

// describeOwner says who owns dir, or the nearest directory above it that
// exists.
func describeOwner(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if o, ok := ownerOf(fi); ok {
				return fmt.Sprintf("%s is owned by uid %d gid %d with mode %s", d, o.uid, o.gid, fi.Mode().Perm())
			}
			return fmt.Sprintf("%s has mode %s", d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return "no directory on its path could be read"
		}
	}
}
