// Package storage reads and deletes the files of a registry's storage: the
// layout of CNCF Distribution ("docker/registry/v2"), the digests in it, the
// manifests it holds, and the backends (filesystem, S3) behind one Store
// interface.
//
// Every other package of regsweep reaches storage through this package only.
package storage
