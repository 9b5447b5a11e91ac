// Package imagetest builds container images in memory for tests: each
// layer is given as its tar (package composetest builds those) and
// stored plain, gzip- or zstd-compressed; the config and an OCI manifest
// are made from the layers. The result implements source.Image, and its
// layers count how often their blob is opened, so that a test can tell a
// layer reused from the repository (never opened) from one imported.
package imagetest
