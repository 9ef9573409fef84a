// Package cyrusfs is the one writer of Cyrus's files: every file and
// directory mbtool creates, replaces, renames, links or removes under a
// partition, the configuration directory or the lock directory goes
// through it.
//
// Those trees belong to the user Cyrus runs as, and mbtool often runs as
// root, so they are hostile territory: the cyrus user can replace any
// directory or file in them with a symlink. The package therefore
//
//   - resolves every path from a descriptor of its root (a partition, the
//     configdirectory, the lock directory) without following symlinks:
//     openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where the kernel has
//     it, else openat with O_NOFOLLOW one component at a time; a path
//     outside every root, or with a ".." component, is refused;
//   - creates files as unnamed O_TMPFILE inodes (or, where the file system
//     lacks them, under a fresh O_EXCL temporary name), sets owner and mode
//     on the descriptor, and only then links the file under its name, so a
//     file never has its final name with the wrong owner, even when the
//     process is killed (SIGKILL) in between;
//   - creates directories under a temporary name, sets owner and mode on
//     the descriptor, and renames them into place without replacing;
//   - beneath a private directory (Dir.MkdirPrivate: owned by the user
//     running mbtool, mode 0700, which no other user can enter, such as
//     restore's staging directory) creates directories and files under
//     their final names at once, O_EXCL and without following a symlink,
//     and sets owner and mode on the descriptor before they can leave it;
//   - replaces a file by writing <name>.NEW the same way, fsyncing it,
//     renaming it over the name and fsyncing the directory;
//   - hard-links message files, and copies instead when link fails with
//     EMLINK, EXDEV, EPERM or EOPNOTSUPP, as Cyrus's cyrus_copyfile does
//     (lib/util.c).
//
// The configured roots themselves are trusted: they are the operator's
// configuration. See docs/safety.md.
//
// A directory made under a temporary name and left by a killed run is
// removed by the next run that makes a directory beside it (the names
// carry the process ID).
//
// For tests only, two environment variables (EnvKillAt, EnvTrace):
// MBTOOL_CYRUSFS_KILL_AT=N or KIND:N makes the process kill itself with
// SIGKILL at the N-th step it takes (of that kind: create, chown, owned,
// link, linked, mkdir, rename, renamed), to show what a crash at each
// point leaves behind; MBTOOL_CYRUSFS_TRACE=FILE appends every step and
// its path to FILE, so that a test can choose where to kill.
package cyrusfs
