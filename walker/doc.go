// Package walker lists a registry's storage concurrently into an Inventory:
// repositories, tags with their push times, manifest revisions, layer links,
// blobs with size and age, uploads, and the parsed references of every
// manifest the graph may need.
//
// An inventory of a large registry holds millions of objects, so it is
// compact: the blobs are one sorted table without pointers (Digests), and
// every link, tag and manifest reference names its digest by a 4-byte ID
// into that table.
package walker
