// Command genrepo makes the repository of the prune benchmark: BRANCHES
// branches of COMMITS/BRANCHES commits each, every commit changing FILES
// files in one of seven directories, so that the repository holds about
// COMMITS×FILES file objects. It writes through package repo in one
// process, which is much faster than a commit per process.
package main
