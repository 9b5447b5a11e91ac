// Package repotest builds repositories and source trees for the tests of
// repo and of the packages above it. Every repository is fresh, in its
// own t.TempDir(), and closed by a cleanup: NewRepo in any of Modes, and
// NewRepoNoSync with core.fsync=false, for tests of logic above the
// storage layer that would otherwise wait on syncfs. VectorTrees makes
// the test-vector trees of the format document (t1, t2, t3, t5) exactly
// as its shell recipe does, so that their commits must have the
// document's checksums. FlipByte damages an object in place, for the
// tests of corruption; flipping the same byte again restores it.
package repotest
