package compose

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// Metadata index keys. The index of a commit's file objects is stored in
// the commit's detached metadata (KeyIndex, ay) and named by the sha256
// of its bytes in the commit's own metadata (KeyIndexSum), so that it is
// as trusted as the commit and travels with it through pull, prune and
// signing without changing what the commit holds.
const (
	KeyIndex    = "ostree-mount.index"        // commitmeta: ay, the index bytes
	KeyIndexSum = "ostree-mount.index-sha256" // commit metadata: hex sha256 of the index
)

// ErrBadIndex is wrapped when an index's bytes do not parse or do not
// hash to the sum its commit names.
var ErrBadIndex = errors.New("bad metadata index")

// indexMagic starts every index; the last byte is the format version:
// 1 holds file records, 2 adds the tree's dirtrees.
var (
	indexMagic   = [8]byte{'O', 'M', 'I', 'D', 'X', 0, 0, 1}
	indexMagicV2 = [8]byte{'O', 'M', 'I', 'D', 'X', 0, 0, 2}
)

// A record is a content object's checksum, then its mode, uid, gid and
// rdev (uint32 each), its size (uint64), and the offset and length
// (uint32 each) of its extra bytes: symlink target and xattrs.
const recordSize = 32 + 4*4 + 8 + 4 + 4

// In version 2, the file records and their extra bytes are followed by
// tree records, sorted by checksum: a dirtree's checksum, then the offset
// and length (uint32 each) of its serialized bytes in the tree data that
// ends the index. The header then also gives the number of tree records
// and the length of the tree data.
const treeRecordSize = 32 + 4 + 4

// Index maps content objects to their metadata (repo.FileMeta): what
// composing a directory needs of its files, without opening or fetching
// a single object. Its bytes are records sorted by checksum, searched in
// place; nothing is decoded until asked.
type Index struct {
	data     []byte
	n        int
	records  []byte
	extra    []byte
	nTrees   int
	trees    []byte // tree records
	treeDat  []byte
	objects  buckets // of records
	treeKeys buckets // of tree records
}

// buckets narrow a search of records sorted by checksum: checksums are
// uniform, so the top bits of one tell where among the records it is.
// starts[b] is the first record whose top bits are b or more.
type buckets struct {
	shift  uint
	starts []uint32
}

// newBuckets sizes the table to about four records a bucket.
func newBuckets(n int) buckets {
	k := min(bits.Len(uint(n/4)), 20)
	return buckets{shift: uint(64 - k), starts: make([]uint32, 1<<k+1)}
}

func prefix(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// fill sets the starts from the sorted keys.
func (b buckets) fill(n int, key func(i int) []byte) {
	next := 0
	for i := 0; i < n; i++ {
		for k := int(b.bucket(key(i))); next <= k; next++ {
			b.starts[next] = uint32(i)
		}
	}
	for ; next < len(b.starts); next++ {
		b.starts[next] = uint32(n)
	}
}

func (b buckets) bucket(sum []byte) uint64 {
	if b.shift == 64 {
		return 0
	}
	return prefix(sum) >> b.shift
}

// find returns the index of the record whose key is c, or -1.
func (b buckets) find(c *repo.Checksum, key func(i int) []byte) int {
	k := b.bucket(c[:])
	lo, hi := int(b.starts[k]), int(b.starts[k+1])
	i := lo + sort.Search(hi-lo, func(i int) bool { return bytes.Compare(key(lo + i)[:32], c[:]) >= 0 })
	if i < hi && bytes.Equal(key(i)[:32], c[:]) {
		return i
	}
	return -1
}

// CommitMetaReader is implemented by object readers that can read a
// commit's detached metadata (*repo.Repo, and stores in front of one).
// Trees opened on readers without it never use indexes.
type CommitMetaReader interface {
	ReadCommitMeta(c repo.Checksum) (repo.Metadata, error)
}

var _ CommitMetaReader = (*repo.Repo)(nil)

// ParseIndex checks and wraps index bytes. It keeps data.
func ParseIndex(data []byte) (*Index, error) {
	le := binary.LittleEndian
	hdr, v2 := 16, false
	switch {
	case len(data) >= 16 && bytes.Equal(data[:8], indexMagic[:]):
	case len(data) >= 24 && bytes.Equal(data[:8], indexMagicV2[:]):
		hdr, v2 = 24, true
	default:
		return nil, fmt.Errorf("%w: no index header", ErrBadIndex)
	}
	n, extraLen := uint64(le.Uint32(data[8:])), uint64(le.Uint32(data[12:]))
	var nTrees, treeLen uint64
	if v2 {
		nTrees, treeLen = uint64(le.Uint32(data[16:])), uint64(le.Uint32(data[20:]))
	}
	if uint64(hdr)+n*recordSize+extraLen+nTrees*treeRecordSize+treeLen != uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d records, %d extra bytes, %d tree records and %d tree bytes do not fill %d bytes", ErrBadIndex, n, extraLen, nTrees, treeLen, len(data))
	}
	end := hdr + int(n)*recordSize
	idx := &Index{data: data, n: int(n), records: data[hdr:end], extra: data[end : end+int(extraLen)]}
	end += int(extraLen)
	idx.nTrees, idx.trees = int(nTrees), data[end:end+int(nTrees)*treeRecordSize]
	idx.treeDat = data[end+int(nTrees)*treeRecordSize:]
	for i := 0; i < idx.nTrees; i++ {
		r := idx.treeRecord(i)
		if i > 0 && bytes.Compare(idx.treeRecord(i - 1)[:32], r[:32]) >= 0 {
			return nil, fmt.Errorf("%w: tree records out of order at %d", ErrBadIndex, i)
		}
		if off, l := le.Uint32(r[32:]), le.Uint32(r[36:]); uint64(off)+uint64(l) > uint64(len(idx.treeDat)) {
			return nil, fmt.Errorf("%w: tree record %d: bytes out of range", ErrBadIndex, i)
		}
	}
	for i := 0; i < idx.n; i++ {
		r := idx.record(i)
		if i > 0 && bytes.Compare(idx.record(i - 1)[:32], r[:32]) >= 0 {
			return nil, fmt.Errorf("%w: records out of order at %d", ErrBadIndex, i)
		}
		off, l := binary.LittleEndian.Uint32(r[56:]), binary.LittleEndian.Uint32(r[60:])
		if uint64(off)+uint64(l) > uint64(len(idx.extra)) {
			return nil, fmt.Errorf("%w: record %d: extra bytes out of range", ErrBadIndex, i)
		}
	}
	idx.objects = newBuckets(idx.n)
	idx.objects.fill(idx.n, idx.record)
	idx.treeKeys = newBuckets(idx.nTrees)
	idx.treeKeys.fill(idx.nTrees, idx.treeRecord)
	return idx, nil
}

func (x *Index) record(i int) []byte { return x.records[i*recordSize : (i+1)*recordSize] }

func (x *Index) treeRecord(i int) []byte {
	return x.trees[i*treeRecordSize : (i+1)*treeRecordSize]
}

// Trees is the number of dirtrees in the index (0 in version 1).
func (x *Index) Trees() int { return x.nTrees }

// LookupTree returns dirtree c, if the index holds it. Its bytes are
// checked against c, as an object read would be: a mismatch is
// ErrBadIndex.
func (x *Index) LookupTree(c repo.Checksum) (*repo.DirTree, error) {
	i := x.treeKeys.find(&c, x.treeRecord)
	if i < 0 {
		return nil, nil
	}
	r := x.treeRecord(i)
	off, l := binary.LittleEndian.Uint32(r[32:]), binary.LittleEndian.Uint32(r[36:])
	b := x.treeDat[off : off+l]
	if repo.SumBytes(b) != c {
		return nil, fmt.Errorf("%w: dirtree %s: its bytes do not match", ErrBadIndex, c)
	}
	dt, err := repo.ParseDirTree(b)
	if err != nil {
		return nil, fmt.Errorf("%w: dirtree %s: %w", ErrBadIndex, c, err)
	}
	return dt, nil
}

// Len is the number of objects in the index.
func (x *Index) Len() int { return x.n }

// Size is the index's size in bytes.
func (x *Index) Size() int { return len(x.data) }

// Lookup returns the metadata of content object c, if the index has it.
func (x *Index) Lookup(c repo.Checksum) (*repo.FileMeta, error) {
	i := x.objects.find(&c, x.record)
	if i < 0 {
		return nil, nil
	}
	r := x.record(i)
	le := binary.LittleEndian
	fm := &repo.FileMeta{Mode: le.Uint32(r[32:]), UID: le.Uint32(r[36:]), GID: le.Uint32(r[40:]), Rdev: le.Uint32(r[44:]), Size: int64(le.Uint64(r[48:]))}
	off, l := le.Uint32(r[56:]), le.Uint32(r[60:])
	if l > 0 {
		if err := decodeExtra(x.extra[off:off+l], fm); err != nil {
			return nil, fmt.Errorf("%w: object %s: %w", ErrBadIndex, c, err)
		}
	}
	if fm.Size < 0 {
		return nil, fmt.Errorf("%w: object %s: size %d", ErrBadIndex, c, fm.Size)
	}
	return fm, nil
}

// extra bytes: uvarint length and the symlink target, then for each
// xattr uvarint lengths and bytes of its name and value.
func encodeExtra(fm *repo.FileMeta) []byte {
	if fm.Target == "" && len(fm.Xattrs) == 0 {
		return nil
	}
	b := binary.AppendUvarint(nil, uint64(len(fm.Target)))
	b = append(b, fm.Target...)
	for _, x := range fm.Xattrs {
		b = binary.AppendUvarint(b, uint64(len(x.Name)))
		b = append(b, x.Name...)
		b = binary.AppendUvarint(b, uint64(len(x.Value)))
		b = append(b, x.Value...)
	}
	return b
}

func decodeExtra(b []byte, fm *repo.FileMeta) error {
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("truncated extra bytes")
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	t, err := next()
	if err != nil {
		return err
	}
	fm.Target = string(t)
	for len(b) > 0 {
		name, err := next()
		if err != nil {
			return err
		}
		val, err := next()
		if err != nil {
			return err
		}
		fm.Xattrs = append(fm.Xattrs, repo.Xattr{Name: string(name), Value: append([]byte(nil), val...)})
	}
	return nil
}

// EncodeIndex serializes the metadata of content objects as an index
// (version 1).
func EncodeIndex(objs map[repo.Checksum]*repo.FileMeta) []byte {
	return encodeIndex(objs, nil)
}

// EncodeIndexTrees serializes the metadata of content objects and the
// serialized dirtrees of a tree (checksum -> object bytes) as an index
// (version 2).
func EncodeIndexTrees(objs map[repo.Checksum]*repo.FileMeta, trees map[repo.Checksum][]byte) []byte {
	if trees == nil {
		trees = map[repo.Checksum][]byte{}
	}
	return encodeIndex(objs, trees)
}

func encodeIndex(objs map[repo.Checksum]*repo.FileMeta, trees map[repo.Checksum][]byte) []byte {
	sums := make([]repo.Checksum, 0, len(objs))
	for c := range objs {
		sums = append(sums, c)
	}
	sort.Slice(sums, func(i, j int) bool { return bytes.Compare(sums[i][:], sums[j][:]) < 0 })
	var extra []byte
	recs := make([]byte, 0, len(sums)*recordSize)
	le := binary.LittleEndian
	for _, c := range sums {
		fm := objs[c]
		e := encodeExtra(fm)
		recs = append(recs, c[:]...)
		recs = le.AppendUint32(recs, fm.Mode)
		recs = le.AppendUint32(recs, fm.UID)
		recs = le.AppendUint32(recs, fm.GID)
		recs = le.AppendUint32(recs, fm.Rdev)
		recs = le.AppendUint64(recs, uint64(fm.Size))
		recs = le.AppendUint32(recs, uint32(len(extra)))
		recs = le.AppendUint32(recs, uint32(len(e)))
		extra = append(extra, e...)
	}
	if trees == nil {
		out := make([]byte, 0, 16+len(recs)+len(extra))
		out = append(out, indexMagic[:]...)
		out = le.AppendUint32(out, uint32(len(sums)))
		out = le.AppendUint32(out, uint32(len(extra)))
		out = append(out, recs...)
		return append(out, extra...)
	}
	tsums := make([]repo.Checksum, 0, len(trees))
	for c := range trees {
		tsums = append(tsums, c)
	}
	sort.Slice(tsums, func(i, j int) bool { return bytes.Compare(tsums[i][:], tsums[j][:]) < 0 })
	var trecs, tdat []byte
	for _, c := range tsums {
		trecs = append(trecs, c[:]...)
		trecs = le.AppendUint32(trecs, uint32(len(tdat)))
		trecs = le.AppendUint32(trecs, uint32(len(trees[c])))
		tdat = append(tdat, trees[c]...)
	}
	out := make([]byte, 0, 24+len(recs)+len(extra)+len(trecs)+len(tdat))
	out = append(out, indexMagicV2[:]...)
	out = le.AppendUint32(out, uint32(len(sums)))
	out = le.AppendUint32(out, uint32(len(extra)))
	out = le.AppendUint32(out, uint32(len(tsums)))
	out = le.AppendUint32(out, uint32(len(tdat)))
	out = append(out, recs...)
	out = append(out, extra...)
	out = append(out, trecs...)
	return append(out, tdat...)
}

// IndexSum is the name a commit gives its index: the hex sha256 of its
// bytes.
func IndexSum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// BuildIndex reads the metadata of every content object of the tree
// (root dirtree) through r, several at a time, and encodes it with the
// tree's dirtrees.
func BuildIndex(ctx context.Context, r ObjectReader, root repo.Checksum) ([]byte, error) {
	files := map[repo.Checksum]*repo.FileMeta{}
	trees := map[repo.Checksum][]byte{}
	seen := map[repo.Checksum]bool{}
	todo := []repo.Checksum{root}
	for len(todo) > 0 {
		c := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		dt, err := r.ReadDirTree(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		// The object's bytes, as its serialization gives them back; one
		// that would not (not canonical) is left to be read as an object.
		if b := dt.Marshal(); repo.SumBytes(b) == c {
			trees[c] = b
		}
		for _, f := range dt.Files {
			files[f.Checksum] = nil
		}
		for _, d := range dt.Dirs {
			todo = append(todo, d.Tree)
		}
	}
	sums := make([]repo.Checksum, 0, len(files))
	for c := range files {
		sums = append(sums, c)
	}
	metas := make([]*repo.FileMeta, len(sums))
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for w := 0; w < min(attrWorkers, len(sums)); w++ {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(sums) {
					return nil
				}
				fm, err := r.ReadFileMeta(gctx, sums[i])
				if err != nil {
					return fmt.Errorf("index: %w", err)
				}
				metas[i] = fm
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, c := range sums {
		files[c] = metas[i]
	}
	return EncodeIndexTrees(files, trees), nil
}

// AddIndex builds the index of the tree rooted at root and records it:
// its bytes in detached (the commit's detached metadata to be), its sum in
// md (the commit's metadata).
func AddIndex(ctx context.Context, r ObjectReader, root repo.Checksum, md, detached *repo.Metadata) error {
	b, err := BuildIndex(ctx, r, root)
	if err != nil {
		return err
	}
	md.SetString(KeyIndexSum, IndexSum(b))
	detached.Set(KeyIndex, gvariant.Variant{Type: gvariant.MustParseType("ay"), Value: b})
	return nil
}

// indexSlot is the index of one commit of a tree, loaded on first use.
type indexSlot struct {
	commit repo.Checksum
	sum    string // from the commit's metadata; "" if it names none
	once   sync.Once
	idx    *Index // nil: none, or unusable
	done   atomic.Bool
	kick   sync.Once
}

// loadIndex reads, checks and returns the index of commit c named sum,
// or nil if it cannot be had: an index only saves reads, so a missing or
// bad one means reading objects as before (a bad one is worth a log
// line, which the caller's Options.Logf gets).
func (t *Tree) loadIndex(s *indexSlot) *Index {
	s.once.Do(func() {
		if s.sum == "" {
			return
		}
		if idx, ok := t.caches.indexes.Get(s.sum); ok {
			s.idx = idx
			return
		}
		cmr, ok := t.r.(CommitMetaReader)
		if !ok {
			return
		}
		dm, err := cmr.ReadCommitMeta(s.commit)
		if err != nil || dm == nil {
			if err != nil {
				t.logf("commit %s: metadata index unreadable, reading objects instead: %v", s.commit, err)
			}
			return
		}
		v, ok := dm.Get(KeyIndex)
		b, isBytes := v.Value.([]byte)
		if !ok || !isBytes {
			return
		}
		if IndexSum(b) != s.sum {
			t.logf("commit %s: %v: sha256 %s, the commit names %s; reading objects instead", s.commit, ErrBadIndex, IndexSum(b), s.sum)
			return
		}
		idx, err := ParseIndex(b)
		if err != nil {
			t.logf("commit %s: %v; reading objects instead", s.commit, err)
			return
		}
		t.caches.indexes.Set(s.sum, idx, int64(idx.Size()))
		s.idx = idx
	})
	s.done.Store(true)
	return s.idx
}

// loadedIndex returns the index of s if it is loaded already, or else
// nil, having started its loading in the background: a directory is
// then read from its objects rather than wait for the index, so that
// neither a mount (which composes the root) nor a first listing pays
// for reading a whole layer's index.
//
// Only a tree with a prefetcher (a mount's, which is closed) loads in the
// background, and Close waits for it; any other loads here and now.
func (t *Tree) loadedIndex(s *indexSlot) *Index {
	if s.done.Load() {
		return s.idx
	}
	if t.prefetch == nil {
		return t.loadIndex(s)
	}
	if s.sum != "" {
		s.kick.Do(func() {
			t.bg.Add(1)
			go func() {
				defer t.bg.Done()
				t.loadIndex(s)
			}()
		})
	}
	return nil
}

// indexFor returns the index slot of commit c with metadata cm, honoured
// only in commits that import made.
func indexFor(c repo.Checksum, cm *repo.Commit) *indexSlot {
	s := &indexSlot{commit: c}
	if cm != nil && ImportMade(cm) {
		s.sum, _ = cm.Metadata.String(KeyIndexSum)
	}
	return s
}

func (t *Tree) logf(format string, args ...any) {
	if t.log != nil {
		t.log(format, args...)
	}
}
