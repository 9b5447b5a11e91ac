package remote

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

var (
	typeSummary = gvariant.MustParseType("(a(s(taya{sv}))a{sv})")
	typeU64     = gvariant.MustParseType("t")
	typeStr     = gvariant.MustParseType("s")
	typeBool    = gvariant.MustParseType("b")
)

// MaxSummarySize bounds a fetched summary file.
const MaxSummarySize = 64 << 20

// SummaryRef is one ref of a summary file.
type SummaryRef struct {
	Name   string
	Size   uint64 // of the commit object; stored little-endian, unlike the times
	Commit repo.Checksum
	Meta   repo.Metadata // ostree.commit.timestamp (big-endian t), ...
}

// Summary is a repository's summary file.
type Summary struct {
	Refs []SummaryRef // sorted by name
	Meta repo.Metadata
}

// Lookup returns the ref's entry.
func (s *Summary) Lookup(name string) (SummaryRef, bool) {
	i := sort.Search(len(s.Refs), func(i int) bool { return s.Refs[i].Name >= name })
	if i < len(s.Refs) && s.Refs[i].Name == name {
		return s.Refs[i], true
	}
	return SummaryRef{}, false
}

func metaValue(m repo.Metadata) []any {
	out := make([]any, len(m))
	for i, e := range m {
		out[i] = gvariant.DictEntry{Key: e.Key, Value: e.Value}
	}
	return out
}

func parseMeta(v any) (repo.Metadata, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("metadata: %w", repo.ErrCorrupt)
	}
	m := make(repo.Metadata, len(arr))
	for i, e := range arr {
		de, ok := e.(gvariant.DictEntry)
		if !ok {
			return nil, fmt.Errorf("metadata: %w", repo.ErrCorrupt)
		}
		k, _ := de.Key.(string)
		val, _ := de.Value.(gvariant.Variant)
		m[i] = repo.MetaEntry{Key: k, Value: val}
	}
	return m, nil
}

// Marshal serializes the summary.
func (s *Summary) Marshal() ([]byte, error) {
	refs := make([]any, len(s.Refs))
	for i, r := range s.Refs {
		refs[i] = []any{r.Name, []any{r.Size, r.Commit[:], metaValue(r.Meta)}}
	}
	return gvariant.Marshal(typeSummary, []any{refs, metaValue(s.Meta)})
}

// ParseSummary parses a summary file.
func ParseSummary(b []byte) (*Summary, error) {
	v, err := gvariant.Unmarshal(typeSummary, b)
	if err != nil {
		return nil, fmt.Errorf("summary: %w: %w", repo.ErrCorrupt, err)
	}
	t := v.([]any)
	s := &Summary{}
	for _, e := range t[0].([]any) {
		et := e.([]any)
		name := et[0].(string)
		inner := et[1].([]any)
		csum := inner[1].([]byte)
		if len(csum) != 32 {
			return nil, fmt.Errorf("summary: ref %q: checksum of %d bytes: %w", name, len(csum), repo.ErrCorrupt)
		}
		if err := repo.ValidateRef(name); err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
		m, err := parseMeta(inner[2])
		if err != nil {
			return nil, fmt.Errorf("summary: ref %q: %w", name, err)
		}
		s.Refs = append(s.Refs, SummaryRef{Name: name, Size: inner[0].(uint64), Commit: repo.Checksum(csum), Meta: m})
	}
	if !sort.SliceIsSorted(s.Refs, func(i, j int) bool { return s.Refs[i].Name < s.Refs[j].Name }) {
		return nil, fmt.Errorf("summary: refs not sorted: %w", repo.ErrCorrupt)
	}
	if s.Meta, err = parseMeta(t[1]); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return s, nil
}

// be64 is a big-endian uint64 variant, as ostree stores times.
func be64(v uint64) gvariant.Variant {
	return gvariant.Variant{Type: typeU64, Value: bits.ReverseBytes64(v)}
}

// Timestamp returns a big-endian uint64 metadata value (such as
// ostree.commit.timestamp).
func Timestamp(m repo.Metadata, key string) (time.Time, bool) {
	v, ok := m.Get(key)
	if !ok {
		return time.Time{}, false
	}
	u, ok := v.Value.(uint64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(bits.ReverseBytes64(u)), 0).UTC(), true
}

// GenerateSummary builds the summary of r's refs/heads as `ostree summary
// -u` does, with last-modified now.
func GenerateSummary(ctx context.Context, r *repo.Repo, now time.Time) (*Summary, error) {
	refs, err := r.ListRefs(repo.RefHead)
	if err != nil {
		return nil, err
	}
	s := &Summary{}
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := r.ReadMetaObject(repo.ObjCommit, ref.Commit)
		if err != nil {
			return nil, fmt.Errorf("summary: ref %s: %w", ref.Name, err)
		}
		c, err := repo.ParseCommit(b)
		if err != nil {
			return nil, fmt.Errorf("summary: ref %s: commit %s: %w", ref.Name, ref.Commit, err)
		}
		var m repo.Metadata
		m.Set("ostree.commit.timestamp", be64(c.Timestamp))
		s.Refs = append(s.Refs, SummaryRef{Name: ref.Name.Name, Size: uint64(len(b)), Commit: ref.Commit, Meta: m})
	}
	sort.Slice(s.Refs, func(i, j int) bool { return s.Refs[i].Name < s.Refs[j].Name })
	mode := r.Mode().String() // "archive-z2" for archive, as ostree says
	tomb, err := r.Config().Bool("core", "tombstone-commits", false)
	if err != nil {
		return nil, err
	}
	s.Meta.Set("ostree.summary.mode", gvariant.Variant{Type: typeStr, Value: mode})
	s.Meta.Set("ostree.summary.last-modified", be64(uint64(now.Unix())))
	s.Meta.Set("ostree.summary.tombstone-commits", gvariant.Variant{Type: typeBool, Value: tomb})
	s.Meta.Set("ostree.summary.indexed-deltas", gvariant.Variant{Type: typeBool, Value: true})
	return s, nil
}

// WriteSummary regenerates REPO/summary atomically and removes a stale
// summary.sig, which would no longer match.
func WriteSummary(ctx context.Context, r *repo.Repo) (*Summary, error) {
	s, err := GenerateSummary(ctx, r, time.Now())
	if err != nil {
		return nil, err
	}
	b, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	p := filepath.Join(r.Path(), "summary")
	tmp, err := os.CreateTemp(r.Path(), ".summary-")
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("summary: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	if err := os.Remove(p + ".sig"); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return s, nil
}
