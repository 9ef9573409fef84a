package partition

import (
	"fmt"
	"strconv"
)

// Metadata files of a mailbox directory.
const (
	FileHeader      = "cyrus.header"
	FileIndex       = "cyrus.index"
	FileCache       = "cyrus.cache"
	FileAnnotations = "cyrus.annotations"
)

// metaKinds maps a metadata file to its metapartition_files kind and the
// metadir-<kind>-<partition> override Cyrus consults
// (imap/mboxname.c mboxname_metapath; cyrus.annotations really does use
// the "index" override).
var metaKinds = map[string]struct{ kind, override string }{
	FileHeader:      {"header", "header"},
	FileIndex:       {"index", "index"},
	FileCache:       {"cache", "cache"},
	FileAnnotations: {"annotations", "index"},
}

// mailboxDir is the directory of e under root: by uniqueid, or by name for
// the legacy layout (docs/cyrus/files.md §1).
func (s *Spool) mailboxDir(root string, e Entry) string {
	if e.LegacyDirs() || e.UniqueID == "" {
		return s.Config.hashPath(root, e.Name)
	}
	return idPath(root, e.UniqueID)
}

func (s *Spool) partitionRoot(e Entry) (string, error) {
	root, ok := s.Config.Partitions[e.Partition]
	if !ok {
		return "", fmt.Errorf("mailbox %s: partition %q not configured", e.Name, e.Partition)
	}
	return root, nil
}

// Dirs returns the data directory of e (where message files live) and
// the directory holding its cyrus.header, which differs only with a
// metapartition. Use MetaPath for each metadata file, since
// metapartition_files may place them apart.
func (s *Spool) Dirs(e Entry) (data, meta string, err error) {
	root, err := s.partitionRoot(e)
	if err != nil {
		return "", "", err
	}
	data = s.mailboxDir(root, e)
	meta, err = s.metaDir(e, FileHeader)
	return data, meta, err
}

func (s *Spool) metaDir(e Entry, file string) (string, error) {
	root, err := s.metaRoot(e, file)
	if err != nil {
		return "", err
	}
	return s.mailboxDir(root, e), nil
}

// metaRoot is the partition (or metapartition) root beneath which file
// of e lies.
func (s *Spool) metaRoot(e Entry, file string) (string, error) {
	mk, ok := metaKinds[file]
	if !ok {
		return "", fmt.Errorf("mailbox %s: unknown metadata file %q", e.Name, file)
	}
	cfg := s.Config
	root, ok := cfg.Raw["metadir-"+mk.override+"-"+e.Partition]
	if !ok && cfg.metaFile(mk.kind) {
		root, ok = cfg.MetaPartitions[e.Partition]
	}
	if !ok {
		var err error
		if root, err = s.partitionRoot(e); err != nil {
			return "", err
		}
	}
	return root, nil
}

// MetaPath returns the path of one metadata file of e (FileHeader,
// FileIndex, FileCache or FileAnnotations), honouring metapartitions.
func (s *Spool) MetaPath(e Entry, file string) (string, error) {
	dir, err := s.metaDir(e, file)
	if err != nil {
		return "", err
	}
	return dir + "/" + file, nil
}

// ArchiveDir returns the directory of e's archived message files:
// under archivepartition-<name> if configured, else the data directory.
func (s *Spool) ArchiveDir(e Entry) (string, error) {
	root, err := s.archiveRoot(e)
	if err != nil {
		return "", err
	}
	return s.mailboxDir(root, e), nil
}

func (s *Spool) archiveRoot(e Entry) (string, error) {
	if root, ok := s.Config.ArchivePartitions[e.Partition]; ok {
		return root, nil
	}
	return s.partitionRoot(e)
}

// mailboxPaths sets m's DataDir and ArchiveDir from m.Entry, each
// directory's path made once: with no archive partition or
// metapartition (the usual spool), every file of the mailbox is in one
// directory, whose path a dump would otherwise build seven times per
// mailbox (metaPath).
func (s *Spool) mailboxPaths(m *Mailbox) error {
	root, err := s.partitionRoot(m.Entry)
	if err != nil {
		return err
	}
	m.dataRoot, m.DataDir = root, s.mailboxDir(root, m.Entry)
	aroot, err := s.archiveRoot(m.Entry)
	if err != nil {
		return err
	}
	m.ArchiveDir = m.DataDir
	if aroot != root {
		m.ArchiveDir = s.mailboxDir(aroot, m.Entry)
	}
	return nil
}

// metaPath is MetaPath of m.Entry, from m.DataDir when file lies beneath
// the same root.
func (s *Spool) metaPath(m *Mailbox, file string) (string, error) {
	root, err := s.metaRoot(m.Entry, file)
	if err != nil {
		return "", err
	}
	if root == m.dataRoot {
		return m.DataDir + "/" + file, nil
	}
	return s.mailboxDir(root, m.Entry) + "/" + file, nil
}

// messageName is the file name of a message: "<uid>.".
func messageName(uid uint32) string { return strconv.FormatUint(uint64(uid), 10) + "." }
