package repo

import (
	"context"
	"fmt"
)

// *Repo and *Transaction (which also sees the objects it has staged) read
// objects with the same methods, so that either satisfies the small
// interfaces their consumers define (compose.ObjectReader).

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
func (tx *Transaction) ReadCommit(ctx context.Context, c Checksum) (*Commit, error) {
	if !tx.isStaged(ObjCommit, c) {
		return tx.r.ReadCommit(ctx, c)
	}
	return readParsed(tx.readMeta, ObjCommit, c, ParseCommit)
}

// ReadDirTree reads a dirtree, staged or committed.
func (tx *Transaction) ReadDirTree(ctx context.Context, c Checksum) (*DirTree, error) {
	if !tx.isStaged(ObjDirTree, c) {
		return tx.r.ReadDirTree(ctx, c)
	}
	return readParsed(tx.readMeta, ObjDirTree, c, ParseDirTree)
}

// ReadDirMeta reads a dirmeta, staged or committed.
func (tx *Transaction) ReadDirMeta(ctx context.Context, c Checksum) (*DirMeta, error) {
	if !tx.isStaged(ObjDirMeta, c) {
		return tx.r.ReadDirMeta(ctx, c)
	}
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
func (tx *Transaction) ReadFileMeta(ctx context.Context, c Checksum) (*FileMeta, error) {
	if !tx.isStaged(ObjFile, c) {
		return tx.r.ReadFileMeta(ctx, c)
	}
	tx.mu.Lock()
	fm := tx.fileMetas[c]
	tx.mu.Unlock()
	if fm != nil {
		m := *fm
		m.Xattrs = append([]Xattr(nil), fm.Xattrs...)
		return &m, nil
	}
	f, err := tx.OpenFile(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := f.Meta
	return &m, nil
}
