// Package repotest builds repositories and source trees for tests: the
// test-vector trees of the format document (t1, t2, t3, t5), temporary
// repositories in every mode, and corruption helpers.
package repotest
