// Package shard is the run folder of a sharded garbage collection: which
// mark shard owns a repository, which sweep shard a blob prefix, and the
// files the shards leave each other in the storage (the run's options, each
// mark shard's marks and layer links split by blob prefix, its commit, each
// sweep shard's report part), written and read back as untrusted input.
package shard
