package repo

import (
	"fmt"
)

// ObjectReader reads objects. *Repo implements it, and so does
// *Transaction, which also sees the objects it has staged.
type ObjectReader interface {
	ReadCommit(Checksum) (*Commit, error)
	ReadDirTree(Checksum) (*DirTree, error)
	ReadDirMeta(Checksum) (*DirMeta, error)
	OpenFile(Checksum) (*File, error)
	ReadFileMeta(Checksum) (*FileMeta, error)
}

var (
	_ ObjectReader = (*Repo)(nil)
	_ ObjectReader = (*Transaction)(nil)
)

func (tx *Transaction) isStaged(t ObjectType, c Checksum) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.staged[ObjectName{t, c}]
}

// readMeta reads and verifies a metadata object, staged or committed.
func (tx *Transaction) readMeta(t ObjectType, c Checksum) ([]byte, error) {
	if !tx.isStaged(t, c) {
		return tx.r.ReadMetaObject(t, c)
	}
	b, err := tx.r.readObjectBytesIn(int(tx.dir.Fd()), t, c)
	if err != nil {
		return nil, err
	}
	if SumBytes(b) != c {
		return nil, fmt.Errorf("%s %s: %w", t, c, ErrChecksumMismatch)
	}
	return b, nil
}

// ReadCommit reads a commit, staged or committed.
func (tx *Transaction) ReadCommit(c Checksum) (*Commit, error) {
	return readParsed(tx.readMeta, ObjCommit, c, ParseCommit)
}

// ReadDirTree reads a dirtree, staged or committed.
func (tx *Transaction) ReadDirTree(c Checksum) (*DirTree, error) {
	return readParsed(tx.readMeta, ObjDirTree, c, ParseDirTree)
}

// ReadDirMeta reads a dirmeta, staged or committed.
func (tx *Transaction) ReadDirMeta(c Checksum) (*DirMeta, error) {
	return readParsed(tx.readMeta, ObjDirMeta, c, ParseDirMeta)
}

// OpenFile opens a content object, staged or committed.
func (tx *Transaction) OpenFile(c Checksum) (*File, error) {
	if tx.isStaged(ObjFile, c) {
		return tx.r.openFileIn(int(tx.dir.Fd()), c)
	}
	return tx.r.OpenFile(c)
}

// ReadFileMeta reads a content object's metadata, staged or committed.
func (tx *Transaction) ReadFileMeta(c Checksum) (*FileMeta, error) {
	if !tx.isStaged(ObjFile, c) {
		return tx.r.ReadFileMeta(c)
	}
	f, err := tx.OpenFile(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := f.Meta
	return &m, nil
}
