// Package cache is a byte-bounded, concurrency-safe cache with
// single-flight loading, over ristretto. Every entry has a cost in bytes;
// the cache keeps the total under its budget by admitting and evicting
// with ristretto's TinyLFU policy. Concurrent misses of one key run the
// loader once; the others wait for its result.
//
// Ristretto's sketches are slow to allocate, a cost a mount would
// pay before its first answer, so a new cache keeps its first few hundred
// entries in a plain map and builds ristretto in the background after.
//
// Ristretto buffers Set calls and may drop them, so a value just loaded is
// not guaranteed to be cached: callers must always be ready to load again.
package cache
