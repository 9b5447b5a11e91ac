package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Backoff is the wait before each retry of a transient failure; its
// length is the number of retries.
var Backoff = []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond}

// retry runs fn until it succeeds, fails for good, or Backoff is spent.
// Only errors wrapping repo.ErrUnavailable are retried.
func retry(ctx context.Context, what string, fn func() error) error {
	var err error
	for i := 0; ; i++ {
		if err = fn(); err == nil || !errors.Is(err, repo.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		if i == len(Backoff) {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, i+1, err)
		}
		t := time.NewTimer(Backoff[i])
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (after %w)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// FetchMeta fetches a metadata object (commit, dirtree, dirmeta,
// commitmeta) with retries and returns its bytes, unverified: a caller
// that stores it goes through repo's WriteFetchedMeta.
func FetchMeta(ctx context.Context, f Fetcher, t repo.ObjectType, c repo.Checksum) ([]byte, string, error) {
	var b []byte
	var u string
	err := retry(ctx, fmt.Sprintf("%s %s", t, c), func() error {
		o, err := f.Fetch(ctx, t, c)
		if err != nil {
			return err
		}
		u = o.URL
		defer o.Body.Close()
		b, err = io.ReadAll(io.LimitReader(o.Body, repo.MaxFetchedMetaSize+1))
		if err == nil && len(b) > repo.MaxFetchedMetaSize {
			err = fmt.Errorf("%s %s from %s: larger than %d bytes: %w", t, c, o.URL, repo.MaxFetchedMetaSize, repo.ErrCorrupt)
		}
		return err
	})
	return b, u, err
}

// Store fetches one object and stages it in tx, verified, with retries of
// transient failures. For a metadata object it returns the object's
// bytes. Damage (repo.ErrChecksumMismatch, repo.ErrCorrupt) is reported
// with the object's URL and never retried.
func Store(ctx context.Context, f Fetcher, tx *repo.Transaction, t repo.ObjectType, c repo.Checksum) ([]byte, error) {
	if t != repo.ObjFile {
		b, u, err := FetchMeta(ctx, f, t, c)
		if err != nil {
			return nil, err
		}
		if err := tx.WriteFetchedMeta(t, c, b); err != nil {
			return nil, fmt.Errorf("%w (from %s)", err, u)
		}
		return b, nil
	}
	return nil, retry(ctx, fmt.Sprintf("file %s", c), func() error {
		o, err := f.Fetch(ctx, t, c)
		if err != nil {
			return err
		}
		defer o.Body.Close()
		if o.Meta != nil {
			err = tx.WriteFileVerified(c, o.Meta, o.Body)
		} else {
			_, err = tx.WriteFetchedArchive(c, o.Body)
		}
		if err != nil && !errors.Is(err, repo.ErrUnavailable) {
			err = fmt.Errorf("%w (from %s)", err, o.URL)
		}
		return err
	})
}
